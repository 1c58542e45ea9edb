//! A line-oriented terminal emulator: raw pty bytes in, the lines a user saw out.
//!
//! Session transcripts are recordings of a terminal, not text: the user's typos are erased with
//! backspaces, history recall redraws the line after a carriage return, and full-screen programs
//! (vim, less, top) paint an alternate screen that disappears when they exit. Stripping escape
//! codes with a regex keeps the typos and the editor's screen; replaying the bytes through a real
//! escape-sequence parser (`vte`, the one Alacritty uses) onto a model of the line resolves them
//! to what was on the screen when Enter was pressed.
//!
//! The model is deliberately one line wide in the vertical sense: shells edit the current line,
//! and everything above it is history. Lines are unbounded in width (no wrapping), except for a
//! cap that protects memory from hostile input.

/// The longest line kept, in characters; the rest of a longer line is dropped.
pub const MAX_LINE_CHARS: usize = 64 * 1024;

/// One line of rendered output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedLine {
    /// The text on the line when it was ended, without trailing blanks.
    pub text: String,
    /// The caller's tag in force when the line was ended (for streams: the chunk index, so a
    /// command gets the time of the chunk in which Enter was pressed).
    pub tag: usize,
}

/// Feeds bytes through `vte` onto a line model.
#[derive(Default)]
pub struct TerminalRenderer {
    parser: vte::Parser,
    screen: Screen,
}

impl std::fmt::Debug for TerminalRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalRenderer")
            .field("screen", &self.screen)
            .finish()
    }
}

impl TerminalRenderer {
    /// A renderer with an empty screen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; lines ended by them carry `tag`.
    pub fn feed(&mut self, bytes: &[u8], tag: usize) {
        self.screen.tag = tag;
        self.parser.advance(&mut self.screen, bytes);
    }

    /// The line being written, not ended yet.
    pub fn open_line(&self) -> String {
        self.screen.current.iter().collect()
    }

    /// Ends the recording: an unterminated last line is kept.
    pub fn finish(mut self) -> Vec<RenderedLine> {
        if !self.screen.current.is_empty() {
            self.screen.end_line();
        }
        self.screen.lines
    }
}

/// Renders a whole recording at once.
pub fn render(bytes: &[u8]) -> Vec<RenderedLine> {
    let mut renderer = TerminalRenderer::new();
    renderer.feed(bytes, 0);
    renderer.finish()
}

#[derive(Debug, Default)]
struct Screen {
    lines: Vec<RenderedLine>,
    current: Vec<char>,
    cursor: usize,
    alternate: bool,
    tag: usize,
}

impl Screen {
    fn end_line(&mut self) {
        let text: String = self.current.iter().collect();
        self.lines.push(RenderedLine {
            text: text.trim_end().to_string(),
            tag: self.tag,
        });
        self.current.clear();
        self.cursor = 0;
    }

    fn put(&mut self, c: char) {
        if self.cursor >= MAX_LINE_CHARS {
            return;
        }
        if self.cursor < self.current.len() {
            self.current[self.cursor] = c;
        } else {
            self.current.resize(self.cursor, ' ');
            self.current.push(c);
        }
        self.cursor += 1;
    }

    fn erase_in_line(&mut self, mode: u16) {
        match mode {
            0 => self.current.truncate(self.cursor),
            1 => {
                let end = (self.cursor + 1).min(self.current.len());
                self.current[..end].iter_mut().for_each(|c| *c = ' ');
            }
            _ => self.current.clear(),
        }
    }
}

fn first_param(params: &vte::Params, default: u16) -> u16 {
    params
        .iter()
        .next()
        .and_then(|p| p.first().copied())
        .filter(|&v| v != 0)
        .unwrap_or(default)
}

impl vte::Perform for Screen {
    fn print(&mut self, c: char) {
        if !self.alternate {
            self.put(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        if self.alternate {
            return;
        }
        match byte {
            b'\n' | 0x0b | 0x0c => self.end_line(),
            b'\r' => self.cursor = 0,
            0x08 => self.cursor = self.cursor.saturating_sub(1),
            b'\t' => self.cursor = ((self.cursor / 8 + 1) * 8).min(MAX_LINE_CHARS),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &vte::Params, intermediates: &[u8], _ignore: bool, c: char) {
        if intermediates == b"?" {
            if matches!(c, 'h' | 'l') {
                let switches_screen = params
                    .iter()
                    .flatten()
                    .any(|&mode| matches!(mode, 47 | 1047 | 1049));
                if switches_screen {
                    self.alternate = c == 'h';
                }
            }
            return;
        }
        if self.alternate || !intermediates.is_empty() {
            return;
        }
        let n = usize::from(first_param(params, 1));
        match c {
            'K' => {
                let mode = params
                    .iter()
                    .next()
                    .and_then(|p| p.first().copied())
                    .unwrap_or(0);
                self.erase_in_line(mode);
            }
            'C' => self.cursor = (self.cursor + n).min(MAX_LINE_CHARS),
            'D' => self.cursor = self.cursor.saturating_sub(n),
            'G' | '`' => self.cursor = n.saturating_sub(1).min(MAX_LINE_CHARS),
            'H' | 'f' => {
                let col = params
                    .iter()
                    .nth(1)
                    .and_then(|p| p.first().copied())
                    .unwrap_or(1);
                self.cursor = usize::from(col.max(1) - 1).min(MAX_LINE_CHARS);
            }
            'P' if self.cursor < self.current.len() => {
                let end = (self.cursor + n).min(self.current.len());
                self.current.drain(self.cursor..end);
            }
            '@' if self.cursor < self.current.len() => {
                let blanks = n.min(MAX_LINE_CHARS - self.current.len().min(MAX_LINE_CHARS));
                self.current
                    .splice(self.cursor..self.cursor, std::iter::repeat_n(' ', blanks));
            }
            'X' => {
                let end = (self.cursor + n).min(self.current.len());
                if self.cursor < end {
                    self.current[self.cursor..end]
                        .iter_mut()
                        .for_each(|c| *c = ' ');
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(bytes: &[u8]) -> Vec<String> {
        render(bytes).into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn backspace_and_erase_resolve_typos() {
        let lines =
            texts(b"$ systemctl stauts\x08\x1b[K\x08\x1b[K\x08\x1b[K\x08\x1b[Katus ssh\r\n");
        assert_eq!(lines, ["$ systemctl status ssh"]);
        let lines = texts(b"$ lx\x08 \x08s\r\n");
        assert_eq!(lines, ["$ ls"]);
    }

    #[test]
    fn history_recall_redraws_the_line() {
        let lines =
            texts(b"$ \r$ sudo systemctl restart ssh\x1b[K\r$ systemctl status ssh\x1b[K\r\n");
        assert_eq!(lines, ["$ systemctl status ssh"]);
    }

    #[test]
    fn alternate_screen_is_not_part_of_the_line_history() {
        let bytes = b"$ vim x\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n:wq\x1b[?1049l$ ls\r\n";
        assert_eq!(texts(bytes), ["$ vim x", "$ ls"]);
    }

    #[test]
    fn osc_titles_and_private_modes_vanish() {
        let bytes =
            b"\x1b[?2004l\x1b]0;ec2-user@ip-10-0-1-11:~\x07\x1b[?2004h[ec2-user@ip ~]$ id\n";
        assert_eq!(texts(bytes), ["[ec2-user@ip ~]$ id"]);
    }

    #[test]
    fn cursor_moves_and_inserts_edit_in_the_middle() {
        // "ct /etc" -> cursor back 6, insert 'a' via ICH then print.
        let lines = texts(b"$ ct /etc\x1b[6D\x1b[1@a\r\n");
        assert_eq!(lines, ["$ cat /etc"]);
        let lines = texts(b"$ caat\x1b[2D\x1b[P\r\n");
        assert_eq!(lines, ["$ cat"]);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let long = vec![b'a'; MAX_LINE_CHARS * 2];
        let lines = render(&long);
        assert_eq!(lines[0].text.len(), MAX_LINE_CHARS);
        let lines = render(b"\x1b[65535C\x1b[65535@x\xff\xfe\n");
        assert_eq!(lines.len(), 1);
    }
}
