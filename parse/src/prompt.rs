//! Finding the commands in rendered terminal lines by their shell prompts.
//!
//! Session Manager records a terminal, not a command log: a command is the text after a prompt
//! on a line that ended with Enter. The prompt shapes seen on EC2 are recognised (`sh-4.2$`,
//! `[ec2-user@ip-10-0-1-11 ~]$`, `ubuntu@ip-10-0-2-12:~$`, bare `$ ` and `# `, PowerShell's
//! `PS C:\>`); a prompt echoed twice (`sh-4.2$ sh-4.2$ date`, a known agent quirk) counts once.
//!
//! Bare `$ `/`# ` prompts are only trusted in a session whose first prompt was bare: otherwise
//! every `# comment` line printed by `cat` would become a root command.

use std::sync::LazyLock;

use regex::Regex;

use crate::terminal::RenderedLine;

/// A prompt found at the start of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// OS user named by the prompt (`root` for a bare `#`).
    pub user: Option<String>,
    /// Working directory shown by the prompt.
    pub cwd: Option<String>,
    /// Whether the prompt is the bare `$ `/`# ` kind.
    pub bare: bool,
    /// Byte length of the prompt(s) at the start of the line.
    pub len: usize,
}

/// A command line found after a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptCommand {
    /// The command as the user ran it.
    pub cmd: String,
    /// The OS user, when the prompt shows it (`root` for `#`).
    pub run_as: Option<String>,
    /// The working directory, when the prompt shows it.
    pub cwd: Option<String>,
    /// The tag of the line (see [`RenderedLine::tag`]).
    pub tag: usize,
}

static PROMPTS: LazyLock<Vec<(Regex, bool)>> = LazyLock::new(|| {
    [
        // [ec2-user@ip-10-0-1-11 ~]$
        (r"^\[(?P<user>[^@\]\s]+)@(?P<host>[^\]\s]+)(?: (?P<cwd>[^\]]*))?\](?P<sigil>[$#]) ?", false),
        // ubuntu@ip-10-0-2-12:~$
        (r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9._-]+):(?P<cwd>[^\s$#]*)(?P<sigil>[$#]) ?", false),
        // sh-4.2$  bash-5.1#
        (r"^(?:sh|bash|zsh|ksh)-\d+(?:\.\d+)*(?P<sigil>[$#]) ?", false),
        // PS C:\Users\Administrator>
        (r"^PS (?P<cwd>[A-Za-z]:\\[^>]*)> ?", false),
        // $  #  (bare)
        (r"^(?P<sigil>[$#])(?: |$)", true),
    ]
    .into_iter()
    .filter_map(|(pattern, bare)| Regex::new(pattern).ok().map(|re| (re, bare)))
    .collect()
});

/// Matches one prompt (or a prompt repeated) at the start of `line`.
pub fn match_prompt(line: &str) -> Option<Prompt> {
    let mut found: Option<Prompt> = None;
    let mut rest = line;
    let mut consumed = 0;
    'repeat: loop {
        for (re, bare) in PROMPTS.iter() {
            let Some(caps) = re.captures(rest) else {
                continue;
            };
            let whole = caps.get(0).map_or(0, |m| m.end());
            if whole == 0 {
                continue;
            }
            // A repeated prompt must be of the same kind as the first.
            if let Some(first) = &found
                && first.bare != *bare
            {
                break 'repeat;
            }
            let sigil = caps.name("sigil").map(|m| m.as_str());
            let user = caps
                .name("user")
                .map(|m| m.as_str().to_string())
                .or_else(|| (sigil == Some("#")).then(|| "root".to_string()));
            consumed += whole;
            found = Some(Prompt {
                user,
                cwd: caps
                    .name("cwd")
                    .map(|m| m.as_str().to_string())
                    .filter(|c| !c.is_empty()),
                bare: *bare,
                len: consumed,
            });
            rest = &rest[whole..];
            continue 'repeat;
        }
        break;
    }
    found
}

/// Extracts the commands from rendered lines.
///
/// A line with a prompt and text after it is a command, unless it was abandoned with Ctrl-C
/// (the terminal echoes `^C`). The OS user of a command is the one its prompt shows, else
/// `default_run_as`.
pub fn extract_commands(
    lines: &[RenderedLine],
    default_run_as: Option<&str>,
) -> Vec<PromptCommand> {
    let mut trust_bare: Option<bool> = None;
    let mut commands = Vec::new();
    for line in lines {
        let Some(prompt) = match_prompt(&line.text) else {
            continue;
        };
        let trusted = *trust_bare.get_or_insert(prompt.bare);
        if prompt.bare && !trusted {
            continue;
        }
        let cmd = line.text[prompt.len..].trim();
        if cmd.is_empty() || cmd.ends_with("^C") {
            continue;
        }
        commands.push(PromptCommand {
            cmd: cmd.to_string(),
            run_as: prompt.user.or_else(|| default_run_as.map(str::to_string)),
            cwd: prompt.cwd,
            tag: line.tag,
        });
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<RenderedLine> {
        texts
            .iter()
            .map(|t| RenderedLine {
                text: t.to_string(),
                tag: 0,
            })
            .collect()
    }

    #[test]
    fn prompt_shapes() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            ("sh-4.2$ date", None, None, "date"),
            ("sh-4.2$ sh-4.2$ date", None, None, "date"),
            (
                "[ec2-user@ip-10-0-1-11 ~]$ sudo su -",
                Some("ec2-user"),
                Some("~"),
                "sudo su -",
            ),
            ("[root@ip-10-0-1-11 ~]# id", Some("root"), Some("~"), "id"),
            (
                "ubuntu@ip-10-0-2-12:/var/log$ ls",
                Some("ubuntu"),
                Some("/var/log"),
                "ls",
            ),
            ("$ df -h", None, None, "df -h"),
            ("# whoami", Some("root"), None, "whoami"),
            (
                "PS C:\\Users\\Administrator> whoami",
                None,
                Some("C:\\Users\\Administrator"),
                "whoami",
            ),
        ];
        for (line, user, cwd, cmd) in cases {
            let prompt = match_prompt(line).unwrap_or_else(|| panic!("no prompt in {line}"));
            assert_eq!(prompt.user.as_deref(), *user, "{line}");
            assert_eq!(prompt.cwd.as_deref(), *cwd, "{line}");
            assert_eq!(line[prompt.len..].trim(), *cmd, "{line}");
        }
        for not_prompt in [
            "Filesystem Size Used",
            "total 12",
            "#comment",
            "$HOME is set",
        ] {
            assert_eq!(match_prompt(not_prompt), None, "{not_prompt}");
        }
    }

    #[test]
    fn bare_prompts_only_count_in_sessions_that_use_them() {
        let found = extract_commands(
            &lines(&[
                "sh-4.2$ cat /etc/nginx/nginx.conf",
                "# For more information",
                "sh-4.2$ exit",
            ]),
            Some("ssm-user"),
        );
        let cmds: Vec<_> = found.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["cat /etc/nginx/nginx.conf", "exit"]);
        assert_eq!(found[0].run_as.as_deref(), Some("ssm-user"));

        let found = extract_commands(&lines(&["$ sudo su", "# id", "uid=0(root)"]), None);
        let cmds: Vec<_> = found
            .iter()
            .map(|c| (c.cmd.as_str(), c.run_as.as_deref()))
            .collect();
        assert_eq!(cmds, [("sudo su", None), ("id", Some("root"))]);
    }

    #[test]
    fn abandoned_and_empty_lines_are_not_commands() {
        let found = extract_commands(
            &lines(&["sh-5.2$ rm -rf /tmp/x^C", "sh-5.2$", "sh-5.2$ ls"]),
            None,
        );
        let cmds: Vec<_> = found.iter().map(|c| c.cmd.as_str()).collect();
        assert_eq!(cmds, ["ls"]);
    }
}
