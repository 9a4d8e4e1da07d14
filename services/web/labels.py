"""The Chinese people read: names of states, roles, kinds and fields, and the API's
refusals said plainly. (The API speaks English to programs; pages speak Chinese.)"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from services.web.client import ApiError

TZ = ZoneInfo("Asia/Shanghai")

ROLES = {
    "member": "党员",
    "registrant": "待注册",
    "community": "社区工作人员",
    "unit": "单位组织员",
    "leader": "领导",
    "operator": "区县管理员",
    "admin": "系统管理员",
}

#: One table per kind of thing with states; ``label(value, kind)`` reads it.
STATES: dict[str, dict[str, str]] = {
    "registration": {
        "submitted": "待社区确认",
        "confirmed": "已报到",
        "rejected": "未通过",
        "transferred_out": "已转出",
        "cancelled": "已取消",
    },
    "registration_role": {
        "unit": "单位所在社区",
        "residence": "居住地社区",
        "contact": "联系帮扶社区",
    },
    "wish": {
        "collected": "已征集",
        "pending_review": "待审核",
        "published": "可认领",
        "rejected": "未通过",
        "withdrawn": "已撤回",
        "expired": "已过期",
        "claimed": "已认领",
        "fulfilled": "待确认完成",
        "confirmed": "已完成",
        "evaluated": "已评价",
    },
    "claim": {
        "active": "认领中",
        "realized": "已实现",
        "cancelled": "已放弃",
        "revoked": "已收回",
        "expired": "已超时",
    },
    "record": {"submitted": "待核实", "verified": "已核实", "returned": "已退回"},
    "five_ones": {
        "home_visit": "民情家访",
        "community_activity": "社区活动",
        "policy_talk": "政策宣讲",
        "wish": "认领微心愿",
        "team": "加入服务团队",
    },
    "pairing": {"need": "需求对接", "project": "项目对接"},
    "pairing_state": {"active": "进行中", "ended": "已结束", "declined": "已婉拒"},
    "availability": {
        "weekday_daytime": "工作日白天",
        "weekday_evening": "工作日晚上",
        "weekend": "周末",
    },
    "roster": {"running": "导入中", "done": "已完成", "failed": "失败"},
    "role": ROLES,
}

FIELDS = {
    "phone": "手机号",
    "code": "验证码",
    "name": "姓名",
    "id_number": "身份证号",
    "email": "电子邮箱",
    "unit_code": "工作单位",
    "residence_community_code": "居住社区",
    "community_code": "社区",
    "skills": "专长",
    "availability": "可服务时间",
    "consent": "同意书",
    "kind": "类型",
    "date": "日期",
    "hours": "时长",
    "start_time": "开始时间",
    "end_time": "结束时间",
    "note": "说明",
    "reason": "原因",
    "title": "标题",
    "file": "文件",
}

#: The API's validation messages people meet most, in Chinese (the rest: a generic line),
#: the more particular first.
_MESSAGES: list[tuple[str, str]] = [
    (r"is sensitive", "该类别属敏感信息，须有本人（或监护人）单独同意"),
    (r"required skill or a category", "所需专长和服务对象类别至少填一项"),
    (r"column missing", "表头缺少此列（请使用模板）"),
    (r"too large|10 MB", "文件太大（最大10MB）"),
    (r"cannot be read|not a .*(workbook|text)|format", "无法读取文件，请上传 xlsx、xls 或 CSV"),
    (r"no such service target", "没有这个服务对象"),
    (r"a date like", "日期格式如 2016-07-01"),
    (r"ends before it starts", "结束日期早于开始日期"),
    (r"in the past|has passed", "日期已过"),
    (r"not a (mainland )?mobile|mobile", "请输入11位手机号（如 13800138000）"),
    (r"check character", "身份证号校验位不对，请逐位核对"),
    (r"must be 18 characters", "身份证号应为18位（最后一位可以是X）"),
    (r"never a county-level code", "身份证号前6位不是有效的地区代码"),
    (r"birth date", "身份证号中的出生日期不对"),
    (r"at least 18", "需年满18周岁"),
    (r"Chinese characters", "请填写2–30个汉字的姓名（少数民族姓名用·分隔）"),
    (r"consent", "请阅读并勾选同意"),
    (r"unknown (unit|community)|no (unit|community)|closed", "没有找到，请从列表中选择"),
    (r"overlap", "与您已登记的另一条记录时间重叠"),
    (r"at most 12|12 hours", "一条记录最多12小时"),
    (r"campaign", "日期须在服务月期间"),
    (r"is required|field required|required|missing", "此项必填"),
    (r"email", "请输入有效的电子邮箱"),
]
#: Messages that carry their figures: the pattern, and the Chinese with them filled in.
_FIGURES: list[tuple[str, str]] = [
    (r"whole number from (\d+) to (\d+)", "请填写{0}到{1}的整数"),
    (r"at most (\d+) characters", "最多{0}个字"),
]


def label(value: Any, kind: str) -> str:
    if value is None:
        return ""
    return STATES.get(kind, {}).get(str(value), str(value))


def field_message(field: str, message: str) -> str:
    """The API's message about ``field``, said in Chinese."""
    text = message.strip()
    if found := re.match(r"choose from: (.*)", text):
        return "请从以下选择：" + found.group(1).split(" (")[0].replace(", ", "、")
    for pattern, chinese in _FIGURES:
        if found := re.search(pattern, text):
            return chinese.format(*found.groups())
    for pattern, chinese in _MESSAGES:
        if re.search(pattern, message, re.IGNORECASE):
            return chinese
    return f"{FIELDS.get(field, '此项')}填写有误，请检查"


def refusal(exc: ApiError) -> str:
    if exc.status == 429:
        wait = exc.headers.get("retry-after", "")
        minutes = max(1, (int(wait) + 59) // 60) if wait.isdigit() else None
        return f"操作太频繁，请{minutes}分钟后再试" if minutes else "操作太频繁，请稍后再试"
    if exc.status == 409:
        state = exc.problem.get("state")
        if state:
            named = next((t[state] for t in STATES.values() if state in t), state)
            return f"当前状态为「{named}」，不能这样操作"
        return "无法完成：可能已被他人处理，请刷新后查看"
    if exc.status == 404:
        return "没有找到，或不在您的管辖范围内"
    if exc.status == 403:
        return "您的身份不能进行此操作"
    if exc.status == 422:
        return "填写有误，请检查后再提交"
    if exc.status == 401:
        return "登录已失效，请重新登录"
    return "服务暂时不可用，请稍后再试"


def day(value: Any) -> str:
    """``2016-07-03`` or an ISO instant → ``7月3日`` (Beijing time)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        local = value.astimezone(TZ) if value.tzinfo else value
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{value.month}月{value.day}日"


def hours(value: Any) -> str:
    number = float(value or 0)
    return f"{number:g}小时"
