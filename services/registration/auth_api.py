"""Sign-in routes: ask for an SMS code, open a session with it, sign out.

``POST /auth/codes`` answers the same (status, body, headers) for every valid mobile, known
or not; only the format of the number and the limits (429, the same for everyone) can
refuse it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.registration import runtime, sessions
from shared.auth import REGISTRANT, ROLES, Principal, requires
from shared.runtime import Runtime

router = APIRouter(tags=["sign-in"])
Rt = Annotated[Runtime, Depends(runtime)]
SignedIn = Annotated[Principal, Depends(requires(runtime, *ROLES, REGISTRANT))]

CODE_SENT = {
    "status": "accepted",
    "detail": "如果该号码可以登录，验证码已通过短信发送，5分钟内有效。",
}


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str = Field(min_length=1, max_length=30, description="the mobile to send a code to")


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str = Field(min_length=1, max_length=30)
    code: str = Field(pattern=r"^\s*\d{6}\s*$", description="the 6-digit code from the SMS")
    role: str | None = Field(
        default=None, max_length=20, description="when the number has several accounts"
    )
    scope: str | None = Field(
        default=None, max_length=60, description="when one role has several scopes"
    )


class SessionOut(BaseModel):
    token: str
    token_type: str
    role: str
    scope: str
    expires_at: str
    accounts: list[dict[str, str]]


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("/auth/codes", status_code=202)
def request_code(body: CodeRequest, request: Request, rt: Rt) -> dict[str, str]:
    """手机号 + 验证码: send a sign-in code by SMS. Always the same answer: a stranger
    learns nothing about who is registered. At most one a minute and ten a day per number."""
    with rt.uow() as uow:
        sessions.request_code(uow, rt.sealer, body.phone, _address(request), rt.settings.district)
        uow.commit()
    return CODE_SENT


@router.post("/auth/sessions", status_code=201, response_model=SessionOut)
def open_session(body: SessionRequest, rt: Rt, response: Response) -> dict[str, Any]:
    """Sign in with the code: a signed token for the member, a staff account (``role``, and
    ``scope`` when needed, choose among several), or — a number with no account — a
    registrant who may only register themselves. 5 wrong codes spend the code."""
    with rt.uow() as uow:
        session = sessions.sign_in(
            uow, rt.sealer, rt.settings, body.phone, body.code, body.role, body.scope
        )
        uow.commit()
    response.headers["Cache-Control"] = "no-store"
    return sessions.session_view(session)


@router.delete("/auth/sessions", status_code=204)
def sign_out(rt: Rt, principal: SignedIn) -> Response:
    """Sign out: this token stops working in every service."""
    with rt.uow() as uow:
        sessions.sign_out(uow, principal)
        uow.commit()
    return Response(status_code=204)
