//! Scenario text to [`Script`]. Every error is `FILE:LINE: error: ...`, found before anything
//! runs: unknown command, unknown or reused name, wrong arity, bad number, flag or mode.

use std::fmt;

use super::*;
use crate::error::errno_from_name;

/// A malformed script: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: error: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole script.
pub fn parse(file: &str, text: &str) -> Result<Script, ParseError> {
    let mut p = Parser {
        script: Script {
            file: file.to_string(),
            backend: None,
            names: Vec::new(),
            commands: Vec::new(),
        },
        line: 0,
    };
    for (i, raw) in text.lines().enumerate() {
        p.line = i + 1;
        p.parse_line(raw)?;
    }
    Ok(p.script)
}

struct Parser {
    script: Script,
    line: usize,
}

/// A token: a bare word or a quoted string (already unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(Vec<u8>),
}

impl Parser {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            file: self.script.file.clone(),
            line: self.line,
            message: message.into(),
        })
    }

    fn parse_line(&mut self, raw: &str) -> Result<(), ParseError> {
        if raw.len() > MAX_LINE_BYTES {
            return self.error(format!("line longer than {MAX_LINE_BYTES} bytes"));
        }
        let (tokens, expect, command_end) = self.tokenize(raw)?;
        let Some(first) = tokens.first() else {
            return match expect {
                Some(_) => self.error("an expectation needs a command before `=>`"),
                None => Ok(()),
            };
        };
        let Token::Word(cmd) = first else {
            return self.error("a command must start with a word, not a quoted string");
        };
        if cmd == "backend" {
            return self.parse_header(&tokens, expect.is_some());
        }
        if self.script.commands.len() >= MAX_COMMANDS {
            return self.error(format!("more than {MAX_COMMANDS} commands"));
        }
        let op = self.parse_op(cmd, &tokens[1..])?;
        if let Some(Expect::Exactly(t)) = &expect
            && !plausible_result(t)
        {
            return self.error(format!("expectation `{t}` can never match a result"));
        }
        let text = raw[..command_end].trim();
        self.script.commands.push(Command {
            line: self.line,
            text: text.to_string(),
            op,
            expect,
        });
        Ok(())
    }

    fn parse_header(&mut self, tokens: &[Token], has_expect: bool) -> Result<(), ParseError> {
        if has_expect {
            return self.error("`backend` takes no expectation");
        }
        if !self.script.commands.is_empty() || self.script.backend.is_some() {
            return self.error("`backend` must come once, before the first command");
        }
        match tokens {
            [_, Token::Word(b)] => match Backend::parse(b) {
                Some(backend) => {
                    self.script.backend = Some(backend);
                    Ok(())
                }
                None => self.error(format!("unknown backend `{b}` (select, poll or epoll)")),
            },
            _ => self.error("usage: backend select|poll|epoll"),
        }
    }

    /// Splits a line into tokens and the expectation, honouring quotes and `#` comments; also
    /// returns where the command part ends (before `=>` or a comment).
    fn tokenize(&self, raw: &str) -> Result<(Vec<Token>, Option<Expect>, usize), ParseError> {
        let mut tokens = Vec::new();
        let mut expect_words: Option<Vec<String>> = None;
        let mut command_end = raw.len();
        let mut chars = raw.chars().peekable();
        let consumed = |chars: &std::iter::Peekable<std::str::Chars<'_>>| {
            raw.len() - chars.clone().map(char::len_utf8).sum::<usize>()
        };
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else if c == '#' {
                if expect_words.is_none() {
                    command_end = consumed(&chars);
                }
                break;
            } else if c == '"' {
                chars.next();
                let s = self.quoted(&mut chars)?;
                match &mut expect_words {
                    Some(_) => return self.error("a quoted string cannot be an expectation"),
                    None => tokens.push(Token::Quoted(s)),
                }
            } else {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '#' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                match &mut expect_words {
                    Some(words) => words.push(word),
                    None if word == "=>" => {
                        command_end = consumed(&chars) - 2;
                        expect_words = Some(Vec::new());
                    }
                    None => tokens.push(Token::Word(word)),
                }
            }
        }
        let expect = match expect_words {
            None => None,
            Some(words) if words.is_empty() => return self.error("`=>` needs an expected result"),
            Some(words) if words == ["*"] => Some(Expect::Any),
            Some(words) => Some(Expect::Exactly(words.join(" "))),
        };
        Ok((tokens, expect, command_end))
    }

    fn quoted(
        &self,
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Result<Vec<u8>, ParseError> {
        let mut out = String::new();
        loop {
            match chars.next() {
                None => return self.error("unterminated string"),
                Some('"') => return Ok(out.into_bytes()),
                Some('\\') => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    other => {
                        return self.error(format!(
                            "unknown escape `\\{}`",
                            other.map_or(String::new(), String::from)
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// A name that must already exist.
    fn known(&self, t: &Token) -> Result<Name, ParseError> {
        let w = self.word(t)?;
        match self.script.names.iter().position(|n| n == w) {
            Some(i) => Ok(Name(i)),
            None => self.error(format!("unknown name `{w}`")),
        }
    }

    /// A name this command creates.
    fn fresh(&mut self, t: &Token) -> Result<Name, ParseError> {
        let w = self.word(t)?.to_string();
        let valid = w
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return self.error(format!(
                "`{w}` is not a name (letters, digits, _; not starting with a digit)"
            ));
        }
        if self.script.names.contains(&w) {
            return self.error(format!("name `{w}` is already used"));
        }
        if self.script.names.len() >= MAX_NAMES {
            return self.error(format!("more than {MAX_NAMES} names"));
        }
        self.script.names.push(w);
        Ok(Name(self.script.names.len() - 1))
    }

    fn word<'t>(&self, t: &'t Token) -> Result<&'t str, ParseError> {
        match t {
            Token::Word(w) => Ok(w),
            Token::Quoted(_) => self.error("expected a word, found a quoted string"),
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &self,
        t: &Token,
        max: T,
    ) -> Result<T, ParseError> {
        let w = self.word(t)?;
        match w.parse::<T>() {
            Ok(n) if n <= max => Ok(n),
            Ok(_) => self.error(format!("`{w}` is larger than the limit {max}")),
            Err(_) => self.error(format!("`{w}` is not a number")),
        }
    }

    fn ip(&self, t: Option<&Token>) -> Result<Ip, ParseError> {
        match t.map(|t| self.word(t)).transpose()? {
            None | Some("v4") => Ok(Ip::V4),
            Some("v6") => Ok(Ip::V6),
            Some(other) => self.error(format!("expected v4 or v6, found `{other}`")),
        }
    }

    fn flags(&self, t: &Token) -> Result<Events, ParseError> {
        let w = self.word(t)?;
        if w == "none" {
            return Ok(Events::NONE);
        }
        let mut e = Events::NONE;
        for part in w.split(',') {
            e |= match part {
                "in" => Events::IN,
                "out" => Events::OUT,
                "rdhup" => Events::RDHUP,
                "pri" => Events::PRI,
                other => {
                    return self.error(format!(
                        "unknown flag `{other}` (in, out, rdhup, pri, none)"
                    ));
                }
            };
        }
        Ok(e)
    }

    fn mode(&self, t: Option<&Token>) -> Result<Mode, ParseError> {
        let Some(t) = t else { return Ok(Mode::LEVEL) };
        let mut mode = Mode::LEVEL;
        for part in self.word(t)?.split(',') {
            match part {
                "et" => mode.edge = true,
                "oneshot" => mode.oneshot = true,
                other => return self.error(format!("unknown mode `{other}` (et, oneshot)")),
            }
        }
        Ok(mode)
    }

    fn arity(
        &self,
        cmd: &str,
        args: &[Token],
        min: usize,
        max: usize,
        usage: &str,
    ) -> Result<(), ParseError> {
        if args.len() < min || args.len() > max {
            return self.error(format!(
                "wrong number of arguments to `{cmd}`: usage: {usage}"
            ));
        }
        Ok(())
    }

    fn parse_op(&mut self, cmd: &str, args: &[Token]) -> Result<Op, ParseError> {
        let usage = USAGE.iter().find(|(c, _)| *c == cmd).map(|(_, u)| *u);
        let Some(usage) = usage else {
            return self.error(format!("unknown command `{cmd}`"));
        };
        let (min, max) = arity_of(cmd);
        self.arity(cmd, args, min, max, usage)?;
        match cmd {
            "pair" | "tcp" | "udp" | "pipe" | "dup" => self.creation_op(cmd, args, usage),
            "listen" | "connect" | "accept" | "refused" => self.connection_op(cmd, args),
            "register" | "modify" | "deregister" | "wait" => self.readiness_op(cmd, args, usage),
            "timer" | "arm" | "ticks" | "armed" => self.timer_op(cmd, args, usage),
            _ => self.io_op(cmd, args),
        }
    }

    /// Commands that make descriptors: pairs, a UDP socket, a pipe, a duplicate.
    fn creation_op(&mut self, cmd: &str, args: &[Token], usage: &str) -> Result<Op, ParseError> {
        Ok(match cmd {
            "pair" => {
                let ty = self.pair_type(args.get(2))?;
                let a = self.fresh(&args[0])?;
                Op::Pair {
                    a,
                    b: self.fresh(&args[1])?,
                    ty,
                }
            }
            "tcp" => {
                let ip = self.ip(args.get(2))?;
                let a = self.fresh(&args[0])?;
                Op::Tcp {
                    a,
                    b: self.fresh(&args[1])?,
                    ip,
                }
            }
            "udp" => {
                let ip = self.ip(args.get(1))?;
                Op::Udp {
                    a: self.fresh(&args[0])?,
                    ip,
                }
            }
            "pipe" => {
                let r = self.fresh(&args[0])?;
                Op::Pipe {
                    r,
                    w: self.fresh(&args[1])?,
                }
            }
            "dup" => {
                let a = self.known(&args[1])?;
                let at = match args.get(2..) {
                    Some([]) | None => None,
                    Some([kw, n]) if self.word(kw)? == "at" => Some(self.number(n, MAX_DUP_AT)?),
                    _ => return self.error(format!("usage: {usage}")),
                };
                Op::Dup {
                    d: self.fresh(&args[0])?,
                    a,
                    at,
                }
            }
            _ => unreachable!("parse_op sends only creation commands here"),
        })
    }

    /// `pair`'s optional socket type (a stream by default).
    fn pair_type(&self, arg: Option<&Token>) -> Result<SockType, ParseError> {
        match arg.map(|t| self.word(t)).transpose()? {
            None | Some("stream") => Ok(SockType::Stream),
            Some("seqpacket") => Ok(SockType::SeqPacket),
            Some("dgram") => Ok(SockType::Dgram),
            Some(other) => self.error(format!("unknown pair type `{other}`")),
        }
    }

    /// Commands on TCP's connection set-up: listen, connect, accept, a refused connect.
    fn connection_op(&mut self, cmd: &str, args: &[Token]) -> Result<Op, ParseError> {
        Ok(match cmd {
            "listen" => {
                let ip = self.ip(args.get(1))?;
                Op::Listen {
                    l: self.fresh(&args[0])?,
                    ip,
                }
            }
            "connect" => {
                let l = self.known(&args[1])?;
                Op::Connect {
                    a: self.fresh(&args[0])?,
                    l,
                }
            }
            "accept" => {
                let l = self.known(&args[1])?;
                Op::Accept {
                    b: self.fresh(&args[0])?,
                    l,
                }
            }
            "refused" => {
                let ip = self.ip(args.get(1))?;
                Op::Refused {
                    a: self.fresh(&args[0])?,
                    ip,
                }
            }
            _ => unreachable!("parse_op sends only connection commands here"),
        })
    }

    /// Commands that move data or end it: sends, receives, shutdown, close, SO_ERROR.
    fn io_op(&mut self, cmd: &str, args: &[Token]) -> Result<Op, ParseError> {
        Ok(match cmd {
            "send" => {
                let a = self.known(&args[0])?;
                let payload = match &args[1] {
                    Token::Quoted(bytes) => Payload::Text(bytes.clone()),
                    t => Payload::Count(self.number(t, MAX_IO_BYTES)?),
                };
                Op::Send { a, payload }
            }
            "fill" => Op::Fill {
                a: self.known(&args[0])?,
            },
            "drain" => Op::Drain {
                a: self.known(&args[0])?,
            },
            "recv" => Op::Recv {
                a: self.known(&args[0])?,
                n: self.number(&args[1], MAX_IO_BYTES)?,
            },
            "sendto" => Op::Sendto {
                a: self.known(&args[0])?,
                b: self.known(&args[1])?,
                n: self.number(&args[2], MAX_IO_BYTES)?,
            },
            "recvfrom" => Op::Recvfrom {
                a: self.known(&args[0])?,
                n: self.number(&args[1], MAX_IO_BYTES)?,
            },
            "shutdown" => Op::Shutdown {
                a: self.known(&args[0])?,
                how: self.shutdown_how(&args[1])?,
            },
            "close" => Op::Close {
                a: self.known(&args[0])?,
            },
            "so_error" => Op::SoError {
                a: self.known(&args[0])?,
            },
            _ => unreachable!("USAGE lists every command"),
        })
    }

    /// `shutdown`'s direction.
    fn shutdown_how(&self, arg: &Token) -> Result<Shutdown, ParseError> {
        match self.word(arg)? {
            "rd" => Ok(Shutdown::Read),
            "wr" => Ok(Shutdown::Write),
            "rdwr" => Ok(Shutdown::Both),
            other => self.error(format!("expected rd, wr or rdwr, found `{other}`")),
        }
    }

    /// Commands on the readiness layer: interest in a descriptor, and a wait.
    fn readiness_op(&mut self, cmd: &str, args: &[Token], usage: &str) -> Result<Op, ParseError> {
        Ok(match cmd {
            "register" | "modify" => {
                let a = self.known(&args[0])?;
                let flags = self.flags(&args[1])?;
                let mode = self.mode(args.get(2))?;
                if cmd == "register" {
                    Op::Register { a, flags, mode }
                } else {
                    Op::Modify { a, flags, mode }
                }
            }
            "deregister" => Op::Deregister {
                a: self.known(&args[0])?,
            },
            "wait" => {
                let ms = self.number(&args[0], MAX_WAIT_MS)?;
                let max = match args.get(1..) {
                    Some([]) | None => None,
                    Some([kw, k]) if self.word(kw)? == "max" => {
                        let k: usize = self.number(k, MAX_WAIT_EVENTS)?;
                        if k == 0 {
                            return self.error("`max` must be at least 1");
                        }
                        Some(k)
                    }
                    _ => return self.error(format!("usage: {usage}")),
                };
                Op::Wait { ms, max }
            }
            _ => unreachable!("parse_op sends only readiness commands here"),
        })
    }
}

impl Parser {
    /// Timer commands: a timerfd, armed or disarmed, its count read, its time left asked.
    fn timer_op(&mut self, cmd: &str, args: &[Token], usage: &str) -> Result<Op, ParseError> {
        Ok(match cmd {
            "timer" => {
                let clock = match args.get(1).map(|t| self.word(t)).transpose()? {
                    None | Some("monotonic") => TimerClock::Monotonic,
                    Some("realtime") => TimerClock::Realtime,
                    Some("boottime") => TimerClock::Boottime,
                    Some(other) => {
                        return self.error(format!(
                            "unknown clock `{other}` (monotonic, realtime, boottime)"
                        ));
                    }
                };
                Op::Timer {
                    t: self.fresh(&args[0])?,
                    clock,
                }
            }
            "arm" => {
                let t = self.known(&args[0])?;
                let ms = self.number(&args[1], MAX_ARM_MS)?;
                let (mut every, mut absolute) = (0, false);
                let mut rest = args[2..].iter();
                while let Some(word) = rest.next() {
                    match self.word(word)? {
                        "every" if every == 0 => match rest.next() {
                            Some(n) => every = self.number(n, MAX_ARM_MS)?,
                            None => return self.error(format!("usage: {usage}")),
                        },
                        "abs" if !absolute => absolute = true,
                        _ => return self.error(format!("usage: {usage}")),
                    }
                }
                Op::Arm {
                    t,
                    ms,
                    every,
                    absolute,
                }
            }
            "ticks" => Op::Ticks {
                t: self.known(&args[0])?,
            },
            "armed" => Op::Armed {
                t: self.known(&args[0])?,
            },
            _ => unreachable!("parse_op sends only timer commands here"),
        })
    }
}

/// Each command and its usage line (what a wrong-arity error prints).
const USAGE: [(&str, &str); 26] = [
    ("pair", "pair A B [stream|seqpacket|dgram]"),
    ("tcp", "tcp A B [v4|v6]"),
    ("listen", "listen L [v4|v6]"),
    ("connect", "connect A L"),
    ("accept", "accept B L"),
    ("refused", "refused A [v4|v6]"),
    ("udp", "udp A [v4|v6]"),
    ("pipe", "pipe R W"),
    ("dup", "dup D A [at N]"),
    ("send", "send A N | send A \"text\""),
    ("fill", "fill A"),
    ("recv", "recv A N"),
    ("drain", "drain A"),
    ("sendto", "sendto A B N"),
    ("recvfrom", "recvfrom A N"),
    ("shutdown", "shutdown A rd|wr|rdwr"),
    ("close", "close A"),
    ("so_error", "so_error A"),
    ("register", "register A FLAGS [MODE]"),
    ("modify", "modify A FLAGS [MODE]"),
    ("deregister", "deregister A"),
    ("wait", "wait MS [max K]"),
    ("timer", "timer T [monotonic|realtime|boottime]"),
    ("arm", "arm T MS [every MS] [abs]"),
    ("ticks", "ticks T"),
    ("armed", "armed T"),
];

/// (fewest, most) arguments of each command.
fn arity_of(cmd: &str) -> (usize, usize) {
    match cmd {
        "pair" | "tcp" => (2, 3),
        "listen" | "refused" | "udp" => (1, 2),
        "connect" | "accept" | "pipe" | "send" | "recv" | "recvfrom" | "shutdown" => (2, 2),
        "dup" => (2, 4),
        "sendto" => (3, 3),
        "register" | "modify" => (2, 3),
        "wait" => (1, 3),
        "timer" => (1, 2),
        "arm" => (2, 5),
        _ => (1, 1),
    }
}

/// Whether an expectation text could ever match a result (an errno name, a number, `ok`,
/// `none`, or events); used to reject typos such as `=> EAGIAN` before running.
pub fn plausible_result(text: &str) -> bool {
    text == "ok"
        || text == "none"
        || text.parse::<u64>().is_ok()
        || errno_from_name(text).is_some()
        || text
            .split(' ')
            .all(|part| part.split_once(':').is_some_and(|(_, f)| !f.is_empty()))
}
