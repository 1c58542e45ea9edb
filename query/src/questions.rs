//! The auditor's named questions as SQL, so `auditq who`, `auditq sessions` and `auditq
//! commands` print what a user could type, and the report shows the statements behind its tables.

use crate::sql_quote;

/// Who accessed a target, when and from where: its sessions, oldest first.
pub fn who(target: &str) -> String {
    format!(
        "select started_at, ended_at, user, principal_arn, source_ip, run_as, kind, logged, commands, session_id \
         from sessions where target = {} order by started_at",
        sql_quote(target)
    )
}

/// Every session (the global filters narrow it), oldest first.
pub fn sessions() -> String {
    "select started_at, duration_seconds, user, source_ip, target, target_name, environment, account, account_alias, region, kind, logged, commands, session_id \
     from sessions order by started_at"
        .to_string()
}

/// The commands of one session, in the order they were run (host commands, which have no
/// position in a recording, by time).
pub fn commands(session_id: &str) -> String {
    format!(
        "select seq, time, run_as, cwd, cmd, source from commands where session_id = {} order by time, seq",
        sql_quote(session_id)
    )
}
