"""Controlled vocabularies shared by the services (what members offer, what residents need)."""

from __future__ import annotations

#: 专长 — what a member is good at; pairing matches these against needs.
SKILLS: tuple[str, ...] = (
    "医疗护理",
    "健康咨询",
    "法律咨询",
    "政策宣讲",
    "心理疏导",
    "家电维修",
    "水电维修",
    "文艺演出",
    "教育辅导",
    "治安巡逻",
    "环境卫生",
    "文明创建",
    "助老服务",
    "关爱儿童",
    "就业指导",
    "矛盾调解",
    "信息技术",
    "书法绘画",
)

#: 可服务时间 — when a member can serve.
AVAILABILITY: tuple[str, ...] = ("weekday_daytime", "weekday_evening", "weekend")

#: 五个一 — the five things each member does in the month, with their Chinese names.
FIVE_ONES: dict[str, str] = {
    "home_visit": "民情家访",
    "community_activity": "社区活动",
    "policy_talk": "政策宣讲",
    "wish": "认领微心愿",
    "team": "加入服务团队",
}
