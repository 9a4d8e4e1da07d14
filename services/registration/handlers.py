"""Registration's one table: which function handles each command (:data:`COMMANDS`) and
which apply each event it listens to (:func:`events`: none — members enter the system
here; registration publishes, it does not listen).

Short handlers sit here; the use cases live in the topic modules the table points at:
:mod:`members` (双注册), :mod:`registrations` (社区报到), :mod:`roster_uploads` (花名册),
:mod:`staff`, :mod:`sessions` (sign-in) and :mod:`directory`.
"""

from __future__ import annotations

from services.registration import (
    directory,
    members,
    registrations,
    roster_uploads,
    sessions,
    staff,
)
from services.registration.commands import (
    ConfirmRegistration,
    ConfirmRegistrations,
    CreateStaff,
    DisableStaff,
    EnableStaff,
    ExportRosterErrors,
    ImportRoster,
    ImportRosterFile,
    ImportStaff,
    IssueOperatorToken,
    LoadDirectory,
    ReadMemberUnmasked,
    RegisterMember,
    RejectRegistration,
    RequestSignInCode,
    ResendStuckRosters,
    RevokeOperatorToken,
    SignIn,
    SignOut,
    UpdateMember,
    UploadRoster,
    WithdrawMember,
)
from services.registration.schemas import (
    CodeSent,
    DirectoryLoaded,
    SessionOut,
    StaffImported,
    StaffOut,
)
from shared.auth import check_role_scope
from shared.http import Invalid, NotFound
from shared.messagebus import CommandTable, EventTable
from shared.runtime import Runtime


def load_directory(cmd: LoadDirectory, rt: Runtime) -> DirectoryLoaded:
    with rt.uow() as uow:
        counts = directory.load(cmd.data, uow, cmd.principal)
        uow.commit()
    return DirectoryLoaded(**counts)


def request_sign_in_code(cmd: RequestSignInCode, rt: Runtime) -> CodeSent:
    with rt.uow() as uow:
        sessions.request_code(uow, rt.sealer, cmd.phone, cmd.address, rt.settings.district)
        uow.commit()
    return CodeSent(**sessions.CODE_SENT)


def sign_in(cmd: SignIn, rt: Runtime) -> SessionOut:
    with rt.uow() as uow:
        session = sessions.sign_in(
            uow, rt.sealer, rt.settings, cmd.phone, cmd.code, cmd.role, cmd.scope
        )
        uow.commit()
    return sessions.session_out(session)


def issue_operator_token(cmd: IssueOperatorToken, rt: Runtime) -> str:
    try:
        check_role_scope(cmd.role, cmd.scope)
    except ValueError as exc:
        raise Invalid("cannot make this token", [{"field": "scope", "message": str(exc)}]) from None
    with rt.uow() as uow:
        secret = sessions.issue_operator_token(
            uow, rt.settings, cmd.role, cmd.scope, cmd.label, cmd.days
        )
        uow.commit()
    return secret


def revoke_operator_token(cmd: RevokeOperatorToken, rt: Runtime) -> None:
    with rt.uow() as uow:
        if sessions.revoke_operator_token(uow, cmd.token_id.strip()) is None:
            raise NotFound(f"no token {cmd.token_id!r} (see 'servicemonth token list')")
        uow.commit()


def sign_out(cmd: SignOut, rt: Runtime) -> None:
    with rt.uow() as uow:
        sessions.sign_out(uow, cmd.principal)
        uow.commit()


def import_staff(cmd: ImportStaff, rt: Runtime) -> StaffImported:
    result = staff.import_file(cmd.data, rt.uow, rt.sealer, cmd.principal, rt.settings.district)
    return result.answer()


def disable_staff(cmd: DisableStaff, rt: Runtime) -> StaffOut:
    """Its sessions stop at once, notify stops sending to it; twice changes nothing."""
    with rt.uow() as uow:
        account = staff.managed_account(uow, cmd.account_id, cmd.principal)
        staff.disable(uow, account, rt.settings.district)
        uow.commit()
        return staff.view(account, rt.sealer)


def enable_staff(cmd: EnableStaff, rt: Runtime) -> StaffOut:
    """Enabled again, its person signs in anew."""
    with rt.uow() as uow:
        account = staff.managed_account(uow, cmd.account_id, cmd.principal)
        staff.enable(uow, rt.sealer, account, rt.settings.district)
        uow.commit()
        return staff.view(account, rt.sealer)


COMMANDS: CommandTable[Runtime] = CommandTable(
    {
        RegisterMember: members.register,
        ReadMemberUnmasked: members.read_unmasked,
        UpdateMember: members.update,
        WithdrawMember: members.withdraw,
        ConfirmRegistration: registrations.confirm,
        ConfirmRegistrations: registrations.confirm_all,
        RejectRegistration: registrations.reject,
        LoadDirectory: load_directory,
        RequestSignInCode: request_sign_in_code,
        SignIn: sign_in,
        SignOut: sign_out,
        IssueOperatorToken: issue_operator_token,
        RevokeOperatorToken: revoke_operator_token,
        UploadRoster: roster_uploads.upload,
        ImportRoster: roster_uploads.run_import,
        ImportRosterFile: roster_uploads.import_file,
        ExportRosterErrors: roster_uploads.export_errors,
        ResendStuckRosters: roster_uploads.resend_stuck,
        CreateStaff: staff.create_account,
        ImportStaff: import_staff,
        DisableStaff: disable_staff,
        EnableStaff: enable_staff,
    }
)


def events(rt: Runtime) -> EventTable:
    """Registration listens to no event."""
    return EventTable()
