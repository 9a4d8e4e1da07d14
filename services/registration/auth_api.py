"""Sign-in routes: ask for an SMS code, open a session with it, sign out.

``POST /auth/codes`` answers the same (status, body, headers) for every valid mobile, known
or not; only the format of the number and the limits (429, the same for everyone) can
refuse it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.registration.bootstrap import bus, runtime
from services.registration.commands import RequestSignInCode, SignIn, SignOut
from services.registration.schemas import CodeRequest, CodeSent, SessionOut, SessionRequest
from shared.auth import REGISTRANT, ROLES, Principal, requires
from shared.messagebus import MessageBus
from shared.runtime import Runtime

router = APIRouter(tags=["sign-in"])
Bus = Annotated[MessageBus[Runtime], Depends(bus)]
SignedIn = Annotated[Principal, Depends(requires(runtime, *ROLES, REGISTRANT))]


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("/auth/codes", status_code=202)
def request_code(body: CodeRequest, request: Request, bus: Bus) -> CodeSent:
    """手机号 + 验证码: send a sign-in code by SMS. Always the same answer: a stranger
    learns nothing about who is registered. At most one a minute and ten a day per number."""
    return bus.handle(RequestSignInCode(phone=body.phone, address=_address(request)))


@router.post("/auth/sessions", status_code=201)
def open_session(body: SessionRequest, bus: Bus, response: Response) -> SessionOut:
    """Sign in with the code: a signed token for the member, a staff account (``role``, and
    ``scope`` when needed, choose among several), or — a number with no account — a
    registrant who may only register themselves. 5 wrong codes spend the code."""
    session = bus.handle(SignIn(phone=body.phone, code=body.code, role=body.role, scope=body.scope))
    response.headers["Cache-Control"] = "no-store"
    return session


@router.delete("/auth/sessions", status_code=204)
def sign_out(bus: Bus, principal: SignedIn) -> Response:
    """Sign out: this token stops working in every service."""
    bus.handle(SignOut(principal=principal))
    return Response(status_code=204)
