//! From tokens to nodes: the tags liquidjs registers (minus those Segment disables), with the
//! same nesting rules and error messages.

use std::collections::VecDeque;

use super::DISABLED_TAGS;
use super::ast::{Branch, Node, Pos};
use super::lexer::{
    LexError, LexResult, Lexer, TagToken, TopToken, json_quote_units, slice_string,
};

/// Parses the whole template.
pub(super) fn parse_template(src: &[u16]) -> LexResult<Vec<Node>> {
    let tokens = Lexer::new(src, 0, src.len()).read_top_level()?;
    let parser = Parser { src };
    parser.parse_tokens(&mut tokens.into())
}

/// Converts a unit offset into a line and column.
pub(super) fn position(src: &[u16], offset: usize) -> Pos {
    let mut line = 1;
    let mut col = 1;
    for &c in src.iter().take(offset) {
        if c == b'\n' as u16 {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    Pos { line, col }
}

struct Parser<'s> {
    src: &'s [u16],
}

/// Gives a positionless error (a plain JavaScript error inside a tag) the token's position.
fn at_token(begin: usize) -> impl Fn(LexError) -> LexError {
    move |mut e| {
        if e.pos.is_none() {
            e.pos = Some(begin);
        }
        e
    }
}

fn plain(msg: impl Into<String>) -> LexError {
    LexError {
        msg: msg.into(),
        pos: None,
    }
}

impl<'s> Parser<'s> {
    fn parse_tokens(&self, tokens: &mut VecDeque<TopToken>) -> LexResult<Vec<Node>> {
        let mut nodes = Vec::new();
        while let Some(tok) = tokens.pop_front() {
            nodes.push(self.parse_token(tok, tokens)?);
        }
        Ok(nodes)
    }

    fn pos(&self, offset: usize) -> Pos {
        position(self.src, offset)
    }

    fn parse_token(&self, tok: TopToken, rest: &mut VecDeque<TopToken>) -> LexResult<Node> {
        match tok {
            TopToken::Html {
                begin,
                end,
                trim_left,
                trim_right,
            } => Ok(Node::Text(slice_string(
                self.src,
                begin + trim_left,
                end.saturating_sub(trim_right),
            ))),
            TopToken::Output(d) => {
                let mut lx = Lexer::new(self.src, d.content.0, d.content.1);
                let value = lx.read_filtered_value().map_err(at_token(d.begin))?;
                Ok(Node::Output(value, self.pos(d.begin)))
            }
            TopToken::Tag(t) => {
                let begin = t.d.begin;
                self.parse_tag(t, rest).map_err(at_token(begin))
            }
        }
    }

    /// The raw text of a tag token.
    fn text(&self, t: &TagToken) -> String {
        slice_string(self.src, t.d.begin, t.d.end)
    }

    fn not_closed(&self, t: &TagToken) -> LexError {
        plain(format!("tag {} not closed", self.text(t)))
    }

    fn parse_tag(&self, t: TagToken, rest: &mut VecDeque<TopToken>) -> LexResult<Node> {
        let pos = self.pos(t.d.begin);
        match t.name.as_str() {
            "assign" => {
                let mut lx = t.args_lexer(self.src);
                let (a, b) = lx.read_identifier();
                if a == b {
                    return Err(lx.error("expected variable name"));
                }
                let key: Box<str> = slice_string(self.src, a, b).into();
                lx.skip_blank();
                if lx.peek() != Some(b'=' as u16) {
                    return Err(lx.error("expected \"=\""));
                }
                lx.p += 1;
                let value = lx.read_filtered_value()?;
                Ok(Node::Assign(key, value, pos))
            }
            "capture" => {
                let mut lx = t.args_lexer(self.src);
                let (a, b) = lx.read_identifier();
                let name: Box<str> = if b > a {
                    slice_string(self.src, a, b).into()
                } else if let Some(q) = lx.read_quoted()? {
                    q
                } else {
                    return Err(lx.error("invalid capture name"));
                };
                let mut body = Vec::new();
                while let Some(tok) = rest.pop_front() {
                    if is_tag(&tok, "endcapture") {
                        return Ok(Node::Capture(name, body));
                    }
                    body.push(self.parse_token(tok, rest)?);
                }
                Err(self.not_closed(&t))
            }
            "comment" => {
                let mut depth = 1;
                while let Some(tok) = rest.pop_front() {
                    if is_tag(&tok, "comment") {
                        depth += 1;
                    } else if is_tag(&tok, "endcomment") {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(Node::Nothing);
                        }
                    }
                }
                Err(self.not_closed(&t))
            }
            "raw" => {
                let mut text = String::new();
                while let Some(tok) = rest.pop_front() {
                    if is_tag(&tok, "endraw") {
                        return Ok(Node::Raw(text));
                    }
                    let (a, b) = match &tok {
                        TopToken::Html { begin, end, .. } => (*begin, *end),
                        TopToken::Output(d) => (d.begin, d.end),
                        TopToken::Tag(t) => (t.d.begin, t.d.end),
                    };
                    text.push_str(&slice_string(self.src, a, b));
                }
                Err(self.not_closed(&t))
            }
            "if" => self.parse_if(t, rest, pos),
            "unless" => self.parse_unless(t, rest, pos),
            "increment" => Ok(Node::Increment(
                t.args_lexer(self.src).read_identifier_string(),
            )),
            "decrement" => Ok(Node::Decrement(
                t.args_lexer(self.src).read_identifier_string(),
            )),
            "cycle" => self.parse_cycle(&t, pos),
            "echo" => {
                let mut lx = t.args_lexer(self.src);
                lx.skip_blank();
                let value = if lx.end() {
                    None
                } else {
                    Some(lx.read_filtered_value()?)
                };
                Ok(Node::Echo(value, pos))
            }
            "liquid" => {
                let mut lx = t.args_lexer(self.src);
                let lines = lx.read_liquid_tag_tokens()?;
                let mut tokens: VecDeque<TopToken> = lines.into_iter().map(TopToken::Tag).collect();
                Ok(Node::Block(self.parse_tokens(&mut tokens)?, false))
            }
            "#" => {
                if inline_comment_has_bad_line(&t.args(self.src)) {
                    return Err(plain(
                        "every line of an inline comment must start with a '#' character",
                    ));
                }
                Ok(Node::Nothing)
            }
            "block" => {
                let mut body = Vec::new();
                while let Some(tok) = rest.pop_front() {
                    if is_tag(&tok, "endblock") {
                        return Ok(Node::Block(body, true));
                    }
                    body.push(self.parse_token(tok, rest)?);
                }
                Err(self.not_closed(&t))
            }
            "break" | "continue" => Ok(Node::Break),
            name if DISABLED_TAGS.contains(&name) => {
                Err(plain(format!("tag \"{name}\" is disabled")))
            }
            name => Err(plain(format!("tag \"{name}\" not found"))),
        }
    }

    fn parse_if(&self, t: TagToken, rest: &mut VecDeque<TopToken>, pos: Pos) -> LexResult<Node> {
        let cond = t.args_lexer(self.src).read_filtered_value()?;
        let mut branches = vec![Branch {
            cond,
            when_truthy: true,
            body: Vec::new(),
        }];
        let mut else_body: Option<Vec<Node>> = None;
        while let Some(tok) = rest.pop_front() {
            if let TopToken::Tag(tag) = &tok {
                match tag.name.as_str() {
                    "elsif" => {
                        if else_body.is_some() {
                            return Err(plain("unexpected elsif after else"));
                        }
                        let cond = tag.args_lexer(self.src).read_filtered_value()?;
                        branches.push(Branch {
                            cond,
                            when_truthy: true,
                            body: Vec::new(),
                        });
                        continue;
                    }
                    "else" => {
                        self.assert_no_args(tag)?;
                        if else_body.is_some() {
                            return Err(plain("duplicated else"));
                        }
                        else_body = Some(Vec::new());
                        continue;
                    }
                    "endif" => {
                        self.assert_no_args(tag)?;
                        return Ok(Node::If(branches, else_body.unwrap_or_default(), pos));
                    }
                    _ => {}
                }
            }
            let node = self.parse_token(tok, rest)?;
            match &mut else_body {
                Some(body) => body.push(node),
                None => {
                    if let Some(b) = branches.last_mut() {
                        b.body.push(node);
                    }
                }
            }
        }
        Err(self.not_closed(&t))
    }

    fn assert_no_args(&self, tag: &TagToken) -> LexResult<()> {
        let args: Vec<u16> = self
            .src
            .get(tag.args_at..tag.d.content.1.max(tag.args_at))
            .unwrap_or_default()
            .to_vec();
        if args.is_empty() {
            Ok(())
        } else {
            Err(plain(format!("unexpected {}", json_quote_units(&args))))
        }
    }

    fn parse_unless(
        &self,
        t: TagToken,
        rest: &mut VecDeque<TopToken>,
        pos: Pos,
    ) -> LexResult<Node> {
        let cond = t.args_lexer(self.src).read_filtered_value()?;
        let mut branches = vec![Branch {
            cond,
            when_truthy: false,
            body: Vec::new(),
        }];
        let mut else_body = Vec::new();
        let mut else_count = 0;
        // Where templates go: the last branch, the else body, or nowhere (an `elsif` after an
        // `else` starts a list that is thrown away).
        #[derive(PartialEq)]
        enum Target {
            Branch,
            Else,
            Discard,
        }
        let mut target = Target::Branch;
        while let Some(tok) = rest.pop_front() {
            if let TopToken::Tag(tag) = &tok {
                match tag.name.as_str() {
                    "elsif" => {
                        if else_count > 0 {
                            target = Target::Discard;
                            continue;
                        }
                        let cond = tag.args_lexer(self.src).read_filtered_value()?;
                        branches.push(Branch {
                            cond,
                            when_truthy: true,
                            body: Vec::new(),
                        });
                        target = Target::Branch;
                        continue;
                    }
                    "else" => {
                        else_count += 1;
                        target = Target::Else;
                        continue;
                    }
                    "endunless" => {
                        return Ok(Node::If(branches, else_body, pos));
                    }
                    _ => {}
                }
            }
            let node = self.parse_token(tok, rest)?;
            match target {
                Target::Branch => {
                    if let Some(b) = branches.last_mut() {
                        b.body.push(node);
                    }
                }
                Target::Else if else_count == 1 => else_body.push(node),
                _ => {}
            }
        }
        Err(self.not_closed(&t))
    }

    fn parse_cycle(&self, t: &TagToken, pos: Pos) -> LexResult<Node> {
        let mut lx = t.args_lexer(self.src);
        let begin = lx.p;
        let mut group = None;
        if let Some(g) = lx.read_value()? {
            lx.skip_blank();
            if lx.peek() == Some(b':' as u16) {
                group = Some(g);
                lx.p += 1;
            } else {
                lx.p = begin;
            }
        }
        let mut candidates = Vec::new();
        while !lx.end() {
            candidates.push(lx.read_filtered_value()?);
            lx.read_to(b",");
        }
        if candidates.is_empty() {
            return Err(lx.error(format!("empty candidates: \"{}\"", self.text(t))));
        }
        let fingerprint = if group.is_some() {
            String::new()
        } else {
            let texts: Vec<&str> = candidates.iter().map(|c| c.text.as_str()).collect();
            format!("cycle:args:{}", texts.join(","))
        };
        Ok(Node::Cycle {
            group,
            candidates,
            fingerprint,
            pos,
        })
    }
}

fn is_tag(tok: &TopToken, name: &str) -> bool {
    matches!(tok, TopToken::Tag(t) if t.name == name)
}

/// Whether some line after the first of an inline comment starts with something other than `#`
/// (JavaScript's `/\n\s*[^#\s]/`).
fn inline_comment_has_bad_line(args: &str) -> bool {
    let mut rest = args;
    while let Some(i) = rest.find('\n') {
        rest = &rest[i + 1..];
        let trimmed = rest.trim_start_matches(super::value::is_js_space);
        if let Some(c) = trimmed.chars().next() {
            if c != '#' {
                return true;
            }
        }
    }
    false
}
