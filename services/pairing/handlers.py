"""Pairing's one table: which function handles each command (:data:`COMMANDS`) and which
apply each event it listens to (:func:`events`).

Short handlers live here; the use cases they call live in the topic modules (``needs``,
``pairings``, ``wishes``, ``activities``, ``teams``). A command handler takes the command
and the service's :class:`Runtime` and answers what its command type says.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import delete, select, update

from services.pairing import activities, needs, pairings, teams, views, wishes
from services.pairing.access import covers, open_community
from services.pairing.commands import (
    CancelClaim,
    ClaimWish,
    CollectWish,
    ConfirmTeamMember,
    ConfirmWish,
    CreateTeam,
    DeclinePairing,
    EvaluateWish,
    ExecutePairingRun,
    FulfilWish,
    JoinTeam,
    LeaveTeam,
    PairByStaff,
    PublishNeed,
    PublishProject,
    PublishTarget,
    PublishWish,
    RecordActivity,
    RejectWish,
    RemovePairing,
    ReturnActivity,
    RevokeClaim,
    RunPairing,
    SubmitWish,
    SweepWishes,
    UploadNeeds,
    UploadProjects,
    VerifyActivity,
    WishCommand,
    WithdrawWish,
)
from services.pairing.models import (
    CommunityReplica,
    MemberReplica,
    ServiceRecord,
    Team,
    TeamMembership,
    Wish,
    WishClaim,
)
from services.pairing.schemas import (
    MembershipOut,
    PairingOut,
    PairingRunOut,
    RecordOut,
    UploadOut,
    WishOut,
)
from shared.auth import Forbidden, apply_revocation, revoke_member_tokens
from shared.db import UnitOfWork
from shared.events import (
    REGISTRATION_EVENTS,
    CommunityChanged,
    Envelope,
    MemberRegistered,
    MemberUpdated,
    MemberWithdrawn,
    RegistrationCancelled,
    RegistrationChanged,
    RegistrationConfirmed,
    RegistrationTransferred,
    TokensRevoked,
)
from shared.http import Invalid, NotFound
from shared.messagebus import CommandTable, EventTable
from shared.runtime import Runtime

Row = TypeVar("Row")
Out = TypeVar("Out")

# --- 双对接: publishing ------------------------------------------------------------------------


def _publisher(
    publish: Callable[[UnitOfWork, str, Mapping[str, Any]], Row],
    out: Callable[[Row], Out],
    pair_again: bool,
) -> Callable[[PublishTarget | PublishNeed | PublishProject | CreateTeam, Runtime], Out]:
    """The handler of one of the community's publications: ``publish`` it from the values,
    answer it as ``out`` shows it, and, for needs and projects, pair the community again."""

    def handle(cmd: PublishTarget | PublishNeed | PublishProject | CreateTeam, rt: Runtime) -> Out:
        with rt.uow() as uow:
            open_community(uow, cmd.community_code, cmd.principal)
            row = publish(uow, cmd.community_code, cmd.values)
            uow.commit()
            answer = out(row)
        if pair_again:
            pairings.run_after_publishing(rt, cmd.community_code)
        return answer

    return handle


def _upload(what: str, cmd: UploadNeeds | UploadProjects, rt: Runtime) -> UploadOut:
    """Good rows land (chunk by chunk), bad ones come back by row; 422 when none is good."""
    needs.too_large(cmd.data)
    with rt.read() as uow:  # a write session would hold SQLite's lock while the file is read
        open_community(uow, cmd.community_code, cmd.principal)
    with rt.uow() as uow:
        summary = needs.upload(uow, cmd.community_code, what, cmd.data)  # commits as it goes
    if not summary["accepted"]:  # then nothing was written
        raise Invalid("no row could be published", summary["errors"])
    pairings.run_after_publishing(rt, cmd.community_code)
    return UploadOut.model_validate(summary)


def upload_needs(cmd: UploadNeeds, rt: Runtime) -> UploadOut:
    return _upload("needs", cmd, rt)


def upload_projects(cmd: UploadProjects, rt: Runtime) -> UploadOut:
    return _upload("projects", cmd, rt)


# --- 双对接: runs and pairings -----------------------------------------------------------------


def run_pairing(cmd: RunPairing, rt: Runtime) -> PairingRunOut:
    """Queue the run for pairing's worker; a scope outside the caller's, or one where no
    community lies (a code that does not exist), is 404."""
    scope = pairings.Scope.parse(cmd.scope)
    if not scope.allows(cmd.principal) or not _has_communities(rt, scope):
        raise NotFound(f"no scope {scope}")
    return views.run_out(pairings.queue_run(rt, scope, cmd.principal))


def _has_communities(rt: Runtime, scope: pairings.Scope) -> bool:
    if scope.kind == "city":
        return True
    with rt.read() as uow:
        found = select(CommunityReplica.code).where(scope.where(CommunityReplica.code)).limit(1)
        return uow.session.scalar(found) is not None


def execute_pairing_run(cmd: ExecutePairingRun, rt: Runtime) -> str:
    """Only adds pairings (the ``pairing.run`` task)."""
    return pairings.execute_run(rt, cmd.run_id, pairings.limits_from(rt.settings))


def pair_by_staff(cmd: PairByStaff, rt: Runtime) -> PairingOut:
    if (cmd.need_id is None) == (cmd.project_id is None):
        message = "give need_id or project_id, not both"
        raise Invalid("what to pair with?", [{"field": "need_id", "message": message}])
    kind, subject_id = ("need", cmd.need_id) if cmd.need_id else ("project", cmd.project_id)
    assert subject_id is not None
    with rt.uow() as uow:
        slot = pairings.subject(uow, kind, subject_id, cmd.principal)
        made = pairings.pair_by_staff(uow, cmd.member_id, slot)
        uow.commit()
        return views.pairing_out(made)


def _end(cmd: RemovePairing | DeclinePairing, rt: Runtime, state: str) -> PairingOut:
    roles = ("admin", "operator", "community") if state == "removed" else ("admin", "member")
    with rt.uow() as uow:
        found = pairings.find(uow, cmd.pairing_id, cmd.principal)
        if cmd.principal.role not in roles:
            raise Forbidden(f"a {cmd.principal.role} token may not do this")
        pairings.end(uow, found, state)
        uow.commit()
        return views.pairing_out(found)


def remove_pairing(cmd: RemovePairing, rt: Runtime) -> PairingOut:
    return _end(cmd, rt, "removed")


def decline_pairing(cmd: DeclinePairing, rt: Runtime) -> PairingOut:
    return _end(cmd, rt, "declined")


# --- 微心愿 ------------------------------------------------------------------------------------


def collect_wish(cmd: CollectWish, rt: Runtime) -> WishOut:
    if not covers(cmd.principal, cmd.community_code):
        raise NotFound(f"no community {cmd.community_code}")
    data = wishes.WishIn(
        community_code=cmd.community_code,
        title=cmd.title,
        description=cmd.description,
        category=cmd.category,
        beneficiary_category=cmd.beneficiary_category,
        deadline=cmd.deadline,
    )
    with rt.uow() as uow:
        wish = wishes.collect(data, uow)
        uow.commit()
        return views.wish_out(wish, None, cmd.principal)


def _on_wish(
    cmd: WishCommand, rt: Runtime, action: Callable[[Wish, UnitOfWork], object]
) -> WishOut:
    """Do ``action`` to the wish the caller may see; answer the wish as it is then."""
    with rt.uow() as uow:
        wish = wishes.find(uow, cmd.wish_id, cmd.principal)
        action(wish, uow)
        uow.commit()
        return views.wish_now(uow, wish, cmd.principal)


def _self(cmd: WishCommand) -> uuid.UUID:
    return uuid.UUID(cmd.principal.code)


def submit_wish(cmd: SubmitWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, wishes.submit)


def publish_wish(cmd: PublishWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, wishes.publish)


def reject_wish(cmd: RejectWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, lambda w, uow: wishes.reject(w, cmd.reason, uow))


def withdraw_wish(cmd: WithdrawWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, lambda w, uow: wishes.withdraw(w, cmd.reason, uow))


def claim_wish(cmd: ClaimWish, rt: Runtime) -> WishOut:
    """Of concurrent claims exactly one succeeds; a member claims only for themself."""
    if cmd.principal.role == "member" and cmd.member_id != _self(cmd):
        raise Forbidden("a member may claim a wish only for themself")
    days = wishes.claim_days(rt.settings)
    return _on_wish(cmd, rt, lambda w, uow: wishes.claim(w, cmd.member_id, uow, days))


def cancel_claim(cmd: CancelClaim, rt: Runtime) -> WishOut:
    member_id = _self(cmd)
    return _on_wish(cmd, rt, lambda w, uow: wishes.cancel(w, member_id, uow))


def revoke_claim(cmd: RevokeClaim, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, lambda w, uow: wishes.revoke(w, cmd.reason, uow))


def fulfil_wish(cmd: FulfilWish, rt: Runtime) -> WishOut:
    member_id = _self(cmd)
    return _on_wish(cmd, rt, lambda w, uow: wishes.fulfil(w, member_id, uow))


def confirm_wish(cmd: ConfirmWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, wishes.confirm)


def evaluate_wish(cmd: EvaluateWish, rt: Runtime) -> WishOut:
    return _on_wish(cmd, rt, lambda w, uow: wishes.evaluate(w, cmd.rating, uow))


def sweep_wishes(cmd: SweepWishes, rt: Runtime) -> dict[str, int]:
    return wishes.sweep_all(rt, cmd.batch)


# --- 五个一 ------------------------------------------------------------------------------------


def record_activity(cmd: RecordActivity, rt: Runtime) -> RecordOut:
    activities.acts_for(cmd.principal, cmd.member_id, cmd.community_code)
    record = activities.RecordIn(
        member_id=cmd.member_id,
        kind=cmd.kind,
        community_code=cmd.community_code,
        day=cmd.day,
        hours=cmd.hours,
        start=cmd.start,
        end=cmd.end,
        note=cmd.note,
    )
    with rt.uow() as uow:
        row = activities.submit(record, uow, rt.settings)
        uow.commit()
        return views.record_out(row)


def _move_record(
    cmd: VerifyActivity | ReturnActivity, rt: Runtime, to: str, reason: str | None = None
) -> RecordOut:
    with rt.uow() as uow:
        row = activities.find(uow, cmd.record_id, cmd.principal)
        activities.move(row, to, uow, reason)
        uow.commit()
        return views.record_out(row)


def verify_activity(cmd: VerifyActivity, rt: Runtime) -> RecordOut:
    return _move_record(cmd, rt, "verified")


def return_activity(cmd: ReturnActivity, rt: Runtime) -> RecordOut:
    return _move_record(cmd, rt, "returned", cmd.reason)


def join_team(cmd: JoinTeam, rt: Runtime) -> MembershipOut:
    activities.for_themself(cmd.principal, cmd.member_id)
    with rt.uow() as uow:
        team = teams.find(uow, cmd.team_id, cmd.principal)
        by_staff = activities.acts_for(cmd.principal, cmd.member_id, team.community_code)
        row = teams.join(team, cmd.member_id, uow, confirmed=by_staff)
        uow.commit()
        return views.membership_out(team, row)


def _move_member(cmd: ConfirmTeamMember | LeaveTeam, rt: Runtime, to: str) -> MembershipOut:
    with rt.uow() as uow:
        team, row = teams.find_membership(uow, cmd.team_id, cmd.member_id, cmd.principal)
        teams.move(team, row, to, uow)
        uow.commit()
        return views.membership_out(team, row)


def confirm_team_member(cmd: ConfirmTeamMember, rt: Runtime) -> MembershipOut:
    return _move_member(cmd, rt, "confirmed")


def leave_team(cmd: LeaveTeam, rt: Runtime) -> MembershipOut:
    return _move_member(cmd, rt, "left")


COMMANDS: CommandTable[Runtime] = CommandTable(
    {
        PublishTarget: _publisher(needs.publish_target, views.target_out, pair_again=False),
        PublishNeed: _publisher(needs.publish_need, views.need_out, pair_again=True),
        PublishProject: _publisher(needs.publish_project, views.project_out, pair_again=True),
        CreateTeam: _publisher(needs.publish_team, views.team_out, pair_again=False),
        UploadNeeds: upload_needs,
        UploadProjects: upload_projects,
        RunPairing: run_pairing,
        ExecutePairingRun: execute_pairing_run,
        PairByStaff: pair_by_staff,
        RemovePairing: remove_pairing,
        DeclinePairing: decline_pairing,
        CollectWish: collect_wish,
        SubmitWish: submit_wish,
        PublishWish: publish_wish,
        RejectWish: reject_wish,
        WithdrawWish: withdraw_wish,
        ClaimWish: claim_wish,
        CancelClaim: cancel_claim,
        RevokeClaim: revoke_claim,
        FulfilWish: fulfil_wish,
        ConfirmWish: confirm_wish,
        EvaluateWish: evaluate_wish,
        SweepWishes: sweep_wishes,
        RecordActivity: record_activity,
        VerifyActivity: verify_activity,
        ReturnActivity: return_activity,
        JoinTeam: join_team,
        ConfirmTeamMember: confirm_team_member,
        LeaveTeam: leave_team,
    }
)


# --- events: the replicas of registration's members and communities ---------------------------


def record_member(event: MemberRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
    """Keep the replica of a registered (or updated) member, whatever the redeliveries."""
    replica = uow.find(MemberReplica, event.member_id)
    if replica is None:
        replica = MemberReplica(id=event.member_id, registered_at=envelope.occurred_at)
        uow.session.add(replica)
    replica.unit_code = event.unit_code
    states = {c["registration_id"]: c.get("state", "submitted") for c in replica.communities or []}
    replica.communities = [
        {
            "code": c.community_code,
            "role": c.role,
            "registration_id": str(c.registration_id),
            "state": states.get(str(c.registration_id), "submitted"),
        }
        for c in event.communities
    ]
    replica.skills = list(event.skills)
    replica.availability = list(event.availability)
    replica.is_leader_cadre = event.is_leader_cadre


def record_registration(event: RegistrationChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    """Follow a registration's state: only confirmed members are paired."""
    replica = uow.find(MemberReplica, event.member_id)
    if replica is None:
        return  # the member.registered event carries the registrations when it comes
    communities = [dict(c) for c in replica.communities]
    for c in communities:
        if c["registration_id"] == str(event.registration_id):
            c["state"] = event.state
    replica.communities = communities


def record_community(event: CommunityChanged, envelope: Envelope, uow: UnitOfWork) -> None:
    community = uow.session.get(CommunityReplica, event.code)
    if community is None:
        community = CommunityReplica(code=event.code)
        uow.session.add(community)
    community.name = event.name
    community.district_code = event.district
    community.valid_to = event.valid_to


def forget_member(event: MemberWithdrawn, envelope: Envelope, uow: UnitOfWork) -> None:
    """A withdrawn member leaves no trace here: a wish they still held goes back to the
    community (published again, the event naming nobody); their claims, service records
    and team places are erased."""
    member_id = event.member_id
    revoke_member_tokens(uow, member_id)
    wishes.release_held_by(member_id, uow, reason="the member withdrew")
    uow.session.flush()
    for model in (WishClaim, ServiceRecord, TeamMembership):
        uow.session.execute(delete(model).where(model.member_id == member_id))
    uow.session.execute(
        update(Team).where(Team.leader_member_id == member_id).values(leader_member_id=None)
    )
    uow.session.execute(delete(MemberReplica).where(MemberReplica.id == member_id))


def events(rt: Runtime) -> EventTable:
    """What pairing does with each event it listens to, in order (``rt``: the consuming
    process's runtime; pairing's event handlers need nothing but their unit of work)."""
    table = (
        EventTable()
        .on(MemberRegistered, record_member)
        .on(MemberUpdated, record_member)
        .on(MemberWithdrawn, forget_member, pairings.erase_member)
        .on(CommunityChanged, record_community)
    )
    for registration_event in REGISTRATION_EVENTS:
        table.on(registration_event, record_registration)
    # 双对接: a confirmed report-in pairs that community; leaving it ends the pairings there
    table.on(RegistrationConfirmed, pairings.pair_confirmed)
    table.on(RegistrationTransferred, pairings.end_with_registration)
    table.on(RegistrationCancelled, pairings.end_with_registration)
    table.on(TokensRevoked, apply_revocation)
    return table.looks_up(MemberReplica, by="member_id")
