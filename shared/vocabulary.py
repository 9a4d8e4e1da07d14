"""Controlled vocabularies shared by the services (what members offer, what residents need)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

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

#: 可服务时间 as forms show it.
AVAILABILITY_LABELS: dict[str, str] = {
    "weekday_daytime": "工作日白天",
    "weekday_evening": "工作日晚上",
    "weekend": "周末",
}

#: Words people write in a 专长 cell or form, and the skills they stand for. A word that
#: is a skill itself, or part of one (法律 → 法律咨询), needs no entry here.
SKILL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "法律": ("法律咨询",),
    "律师": ("法律咨询",),
    "法务": ("法律咨询",),
    "普法": ("法律咨询",),
    "教育": ("教育辅导",),
    "辅导": ("教育辅导",),
    "教师": ("教育辅导",),
    "老师": ("教育辅导",),
    "家教": ("教育辅导",),
    "教学": ("教育辅导",),
    "补课": ("教育辅导",),
    "维修": ("家电维修", "水电维修"),
    "修理": ("家电维修", "水电维修"),
    "家电": ("家电维修",),
    "电器": ("家电维修",),
    "水电": ("水电维修",),
    "水暖": ("水电维修",),
    "电工": ("水电维修",),
    "医疗": ("医疗护理",),
    "医生": ("医疗护理",),
    "医师": ("医疗护理",),
    "护士": ("医疗护理",),
    "护理": ("医疗护理",),
    "急救": ("医疗护理",),
    "义诊": ("医疗护理",),
    "健康": ("健康咨询",),
    "保健": ("健康咨询",),
    "养生": ("健康咨询",),
    "文艺": ("文艺演出",),
    "唱歌": ("文艺演出",),
    "歌唱": ("文艺演出",),
    "舞蹈": ("文艺演出",),
    "跳舞": ("文艺演出",),
    "广场舞": ("文艺演出",),
    "乐器": ("文艺演出",),
    "戏曲": ("文艺演出",),
    "表演": ("文艺演出",),
    "演出": ("文艺演出",),
    "主持": ("文艺演出",),
    "电脑": ("信息技术",),
    "计算机": ("信息技术",),
    "网络": ("信息技术",),
    "手机": ("信息技术",),
    "软件": ("信息技术",),
    "编程": ("信息技术",),
    "it": ("信息技术",),
    "书法": ("书法绘画",),
    "绘画": ("书法绘画",),
    "美术": ("书法绘画",),
    "画画": ("书法绘画",),
    "国画": ("书法绘画",),
    "心理": ("心理疏导",),
    "谈心": ("心理疏导",),
    "调解": ("矛盾调解",),
    "纠纷": ("矛盾调解",),
    "信访": ("矛盾调解",),
    "巡逻": ("治安巡逻",),
    "安保": ("治安巡逻",),
    "治安": ("治安巡逻",),
    "保安": ("治安巡逻",),
    "保洁": ("环境卫生",),
    "卫生": ("环境卫生",),
    "清洁": ("环境卫生",),
    "环保": ("环境卫生",),
    "垃圾分类": ("环境卫生",),
    "绿化": ("环境卫生",),
    "文明": ("文明创建",),
    "交通劝导": ("文明创建",),
    "养老": ("助老服务",),
    "助老": ("助老服务",),
    "敬老": ("助老服务",),
    "老人": ("助老服务",),
    "陪护": ("助老服务",),
    "儿童": ("关爱儿童",),
    "孩子": ("关爱儿童",),
    "留守": ("关爱儿童",),
    "青少年": ("关爱儿童",),
    "就业": ("就业指导",),
    "招聘": ("就业指导",),
    "创业": ("就业指导",),
    "宣讲": ("政策宣讲",),
    "政策": ("政策宣讲",),
    "宣传": ("政策宣讲",),
    "党课": ("政策宣讲",),
}


def skill_words(raw: str | list[str]) -> list[str]:
    """The words of a 专长 cell or list: NFKC-folded (full-width letters and spaces), split on
    、 , ; ， ； / | + & and white space, stripped of trailing 等 and punctuation."""
    items = [raw] if isinstance(raw, str) else raw
    words: list[str] = []
    for item in items:
        for part in _SEPARATORS.split(unicodedata.normalize("NFKC", str(item))):
            word = part.strip(_TRIM)
            if word.endswith("等") and len(word) > 2:
                word = word[:-1]
            if word and word not in words:
                words.append(word)
    return words


def skills_of(word: str) -> list[str]:
    """The skills ``word`` stands for, in :data:`SKILLS` order; empty when none.

    A skill itself; a synonym; a skill that contains the word (法律 → 法律咨询) or that the
    word contains (擅长法律咨询); or a synonym the word contains (会修电脑 → 信息技术). Words
    and synonyms of one character, and Latin ones inside longer words, do not count.
    """
    folded = word.casefold()
    if word in SKILLS:
        return [word]
    found: set[str] = set(SKILL_SYNONYMS.get(folded, ()))
    if len(word) >= 2:
        found |= {s for s in SKILLS if word in s or s in word}
        found |= {
            skill
            for key, skills in SKILL_SYNONYMS.items()
            if len(key) >= 2 and not key.isascii() and key in word
            for skill in skills
        }
    return [s for s in SKILLS if s in found]


def map_skills(raw: str | list[str]) -> tuple[list[str], list[str]]:
    """Free-text 专长 → (skills from :data:`SKILLS`, the words that map to none of them)."""
    if isinstance(raw, str):  # a roster's cells repeat: each text is mapped once
        chosen, other = _mapped_text(raw)
        return list(chosen), list(other)
    return _map_skills(raw)


@lru_cache(maxsize=4096)
def _mapped_text(raw: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    chosen, other = _map_skills(raw)
    return tuple(chosen), tuple(other)


def _map_skills(raw: str | list[str]) -> tuple[list[str], list[str]]:
    chosen: list[str] = []
    other: list[str] = []
    for word in skill_words(raw):
        mapped = skills_of(word)
        if mapped:
            chosen += [s for s in mapped if s not in chosen]
        else:
            other.append(word)
    return chosen, other


_SEPARATORS = re.compile(r"[、,;/|+&\\\s]+")
_TRIM = " .。!！?？:：'\"“”‘’()（）[]【】《》<>-—~"


#: 服务对象 — whom a community's needs serve, from the notice; the sensitive ones (PIPL: the
#: disabled, children, hardship) are stored only with the resident's separate consent.
TARGET_CATEGORIES: tuple[str, ...] = (
    "空巢老人",
    "留守儿童",
    "残障人士",
    "困难党员和群众",
    "下岗职工",
    "外来务工人员及随迁子女",
    "其他",
)
SENSITIVE_CATEGORIES = frozenset(
    {"留守儿童", "残障人士", "困难党员和群众", "外来务工人员及随迁子女"}
)
#: 服务项目 — the kinds of project a community runs.
PROJECT_KINDS: tuple[str, ...] = (
    "文明创建", "治安巡逻", "环境卫生", "政策宣讲", "文体活动", "关爱帮扶", "其他",
)  # fmt: skip
