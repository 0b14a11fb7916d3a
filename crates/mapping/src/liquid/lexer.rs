//! The tokenizer: liquidjs's scanning rules over the template's UTF-16 code units, so that error
//! positions (`line:N, col:M`) and snapshots count characters the way JavaScript does.
//!
//! It cuts the template into top-level tokens (text, `{{ }}` outputs, `{% %}` tags), applies
//! whitespace control, and reads expressions, values and filter chains inside a delimited range.

use super::ast::{Expr, FilterArg, FilterCall, FilteredValue, Lit, Op, Operand};

/// A character that separates tokens (`\t \n \v \f \r` space and a few Unicode spaces).
const BLANK: u8 = 4;
/// A character that may appear in an identifier.
const WORD: u8 = 1;
/// A quote that opens a string literal.
const QUOTE: u8 = 8;
/// A character that may be trimmed by non-greedy whitespace control (unused: Segment is greedy).
const INLINE_BLANK: u8 = 16;
/// A decimal digit.
const NUMBER: u8 = 32;
/// A sign that may start a number.
const SIGN: u8 = 64;

/// The character class bits of one UTF-16 unit, as liquidjs classifies it.
pub(super) fn class_of(c: u16) -> u8 {
    match c {
        0x09 | 0x0d | 0x20 => BLANK | INLINE_BLANK,
        0x0a..=0x0c => BLANK,
        0x22 | 0x27 => QUOTE,
        0x2b => SIGN,
        0x2d => WORD | SIGN,
        0x30..=0x39 => WORD | NUMBER,
        0x3f | 0x41..=0x5a | 0x5f | 0x61..=0x7a => WORD,
        0xa0 | 0x1680 | 0x180e | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000 => {
            BLANK
        }
        _ => 0,
    }
}

/// Whether a unit is blank (skipped between tokens and trimmed by whitespace control).
pub(super) fn is_blank(c: u16) -> bool {
    class_of(c) & BLANK != 0
}

/// liquidjs's `isWord`: ASCII letters, digits, `_`, `-`, `?`, and every non-ASCII unit except the
/// Unicode spaces and the curly double quotes.
fn is_word(c: Option<u16>) -> bool {
    match c {
        None => false,
        Some(c) if c >= 128 => !(is_blank(c) || c == 0x201c || c == 0x201d),
        Some(c) => class_of(c) & WORD != 0,
    }
}

/// An error found while reading the template: a message and the unit offset it points at.
#[derive(Debug, Clone)]
pub(super) struct LexError {
    pub(super) msg: String,
    /// The offset the position suffix points at, or `None` for JavaScript errors liquidjs does not
    /// wrap (they carry no position).
    pub(super) pos: Option<usize>,
}

impl LexError {
    pub(super) fn at(msg: impl Into<String>, pos: usize) -> LexError {
        LexError {
            msg: msg.into(),
            pos: Some(pos),
        }
    }
}

pub(super) type LexResult<T> = Result<T, LexError>;

/// A top-level token.
#[derive(Debug)]
pub(super) enum TopToken {
    /// Literal text between `begin` and `end`, less what whitespace control trims.
    Html {
        begin: usize,
        end: usize,
        trim_left: usize,
        trim_right: usize,
    },
    /// A `{% %}` tag (or one line of a `{% liquid %}` tag).
    Tag(TagToken),
    /// A `{{ }}` output.
    Output(Delimited),
}

/// The parts of a `{{ }}` or `{% %}` token.
#[derive(Debug, Clone)]
pub(super) struct Delimited {
    pub(super) begin: usize,
    pub(super) end: usize,
    /// The content without the delimiters, the `-` markers and surrounding blanks.
    pub(super) content: (usize, usize),
    pub(super) trim_left: bool,
    pub(super) trim_right: bool,
}

impl Delimited {
    fn new(src: &[u16], begin: usize, end: usize, content: (usize, usize)) -> Delimited {
        let (cb, ce) = content;
        let tl = src.get(cb) == Some(&(b'-' as u16));
        let tr = ce >= 1 && src.get(ce - 1) == Some(&(b'-' as u16));
        let mut l = if tl { cb + 1 } else { cb };
        let mut r = if tr { ce.saturating_sub(1) } else { ce };
        while l < r && src.get(l).copied().is_some_and(is_blank) {
            l += 1;
        }
        while r > l && src.get(r - 1).copied().is_some_and(is_blank) {
            r -= 1;
        }
        Delimited {
            begin,
            end,
            content: (l, r),
            trim_left: tl,
            trim_right: tr,
        }
    }
}

/// A tag token: its delimited parts, its name, and where its arguments start.
#[derive(Debug, Clone)]
pub(super) struct TagToken {
    pub(super) d: Delimited,
    pub(super) name: String,
    /// Offset of the arguments (after the name and the blanks that follow it).
    pub(super) args_at: usize,
}

impl TagToken {
    /// A tokenizer positioned at the arguments.
    pub(super) fn args_lexer<'s>(&self, src: &'s [u16]) -> Lexer<'s> {
        let mut lx = Lexer::new(src, self.d.content.0, self.d.content.1);
        lx.p = self.args_at;
        lx
    }

    /// The argument text.
    pub(super) fn args(&self, src: &[u16]) -> String {
        slice_string(src, self.args_at, self.d.content.1)
    }
}

/// Decodes `src[a..b]` (empty when the range is reversed or out of bounds).
pub(super) fn slice_string(src: &[u16], a: usize, b: usize) -> String {
    let b = b.min(src.len());
    if a >= b {
        return String::new();
    }
    String::from_utf16_lossy(&src[a..b])
}

/// JavaScript's `JSON.stringify` of a string given as UTF-16 units (lone surrogates escaped).
pub(super) fn json_quote_units(units: &[u16]) -> String {
    let mut out = String::with_capacity(units.len() + 2);
    out.push('"');
    for item in char::decode_utf16(units.iter().copied()) {
        match item {
            Ok(c) => push_json_char(c, &mut out),
            Err(e) => out.push_str(&format!("\\u{:04x}", e.unpaired_surrogate())),
        }
    }
    out.push('"');
    out
}

/// Appends one character with `JSON.stringify`'s escapes.
pub(super) fn push_json_char(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

/// A cursor over `src[..n]` starting at `p`.
pub(super) struct Lexer<'s> {
    pub(super) src: &'s [u16],
    pub(super) p: usize,
    pub(super) n: usize,
}

impl<'s> Lexer<'s> {
    pub(super) fn new(src: &'s [u16], p: usize, n: usize) -> Lexer<'s> {
        Lexer { src, p, n }
    }

    fn peek_at(&self, k: usize) -> Option<u16> {
        let i = self.p + k;
        if i >= self.n {
            None
        } else {
            self.src.get(i).copied()
        }
    }

    pub(super) fn peek(&self) -> Option<u16> {
        self.peek_at(0)
    }

    fn peek_is(&self, k: usize, c: u8) -> bool {
        self.peek_at(k) == Some(c as u16)
    }

    fn peek_class(&self, k: usize) -> u8 {
        self.peek_at(k).map_or(0, class_of)
    }

    pub(super) fn end(&self) -> bool {
        self.p >= self.n
    }

    pub(super) fn skip_blank(&mut self) {
        while self.peek_class(0) & BLANK != 0 {
            self.p += 1;
        }
    }

    /// `JSON.stringify` of the rest from `begin`, cut to 32 units with an ellipsis.
    pub(super) fn snapshot(&self, begin: usize) -> String {
        let end = self.n.min(self.src.len());
        let rest: &[u16] = if begin < end {
            &self.src[begin..end]
        } else {
            &[]
        };
        if rest.len() > 32 {
            let mut cut = rest[..29].to_vec();
            cut.extend_from_slice(&[b'.' as u16; 3]);
            json_quote_units(&cut)
        } else {
            json_quote_units(rest)
        }
    }

    pub(super) fn error(&self, msg: impl Into<String>) -> LexError {
        LexError::at(msg, self.p)
    }

    /// Whether `word` starts at `p` (ignores the range end, as liquidjs does).
    fn matches(&self, word: &[u8]) -> bool {
        word.iter()
            .enumerate()
            .all(|(i, c)| self.src.get(self.p + i) == Some(&(*c as u16)))
    }

    /// Whether `word` ends just before `p`.
    fn rmatches(&self, word: &[u8]) -> bool {
        if self.p < word.len() {
            return false;
        }
        let start = self.p - word.len();
        word.iter()
            .enumerate()
            .all(|(i, c)| self.src.get(start + i) == Some(&(*c as u16)))
    }

    /// Advances until just after `word`; the offset after it, or `None` at the end.
    pub(super) fn read_to(&mut self, word: &[u8]) -> Option<usize> {
        while self.p < self.n {
            self.p += 1;
            if self.rmatches(word) {
                return Some(self.p);
            }
        }
        None
    }

    /// Like [`Lexer::read_to`] after skipping blanks, optionally jumping over quoted strings.
    fn read_to_delimiter(&mut self, word: &[u8], respect_quoted: bool) -> LexResult<Option<usize>> {
        self.skip_blank();
        while self.p < self.n {
            if respect_quoted && self.peek_class(0) & QUOTE != 0 {
                self.read_quoted()?;
                continue;
            }
            self.p += 1;
            if self.rmatches(word) {
                return Ok(Some(self.p));
            }
        }
        Ok(None)
    }

    // ----- top level -----

    /// Cuts the whole template into top-level tokens and applies whitespace control.
    pub(super) fn read_top_level(mut self) -> LexResult<Vec<TopToken>> {
        let mut tokens = Vec::new();
        let mut raw_begin: Option<usize> = None;
        while self.p < self.n {
            let tok = if let Some(rb) = raw_begin {
                let (tok, still_raw) = self.read_endraw_or_raw_content(rb)?;
                if !still_raw {
                    raw_begin = None;
                }
                tok
            } else if self.matches(b"{%") {
                let begin = self.p;
                let tok = self.read_tag_token()?;
                if tok.name == "raw" {
                    raw_begin = Some(begin);
                }
                TopToken::Tag(tok)
            } else if self.matches(b"{{") {
                self.read_output_token()?
            } else {
                let begin = self.p;
                while self.p < self.n && !(self.matches(b"{%") || self.matches(b"{{")) {
                    self.p += 1;
                }
                TopToken::Html {
                    begin,
                    end: self.p,
                    trim_left: 0,
                    trim_right: 0,
                }
            };
            tokens.push(tok);
        }
        whitespace_control(&mut tokens, self.src);
        Ok(tokens)
    }

    fn read_tag_token(&mut self) -> LexResult<TagToken> {
        let begin = self.p;
        if self.read_to_delimiter(b"%}", false)?.is_none() {
            let msg = format!("tag {} not closed", self.snapshot(begin));
            return Err(LexError::at(msg, begin));
        }
        let d = Delimited::new(self.src, begin, self.p, (begin + 2, self.p - 2));
        tag_token(self.src, d, "illegal tag syntax, tag name expected")
    }

    fn read_output_token(&mut self) -> LexResult<TopToken> {
        let begin = self.p;
        if self.read_to_delimiter(b"}}", true)?.is_none() {
            let msg = format!("output {} not closed", self.snapshot(begin));
            return Err(LexError::at(msg, begin));
        }
        Ok(TopToken::Output(Delimited::new(
            self.src,
            begin,
            self.p,
            (begin + 2, self.p - 2),
        )))
    }

    /// Inside `{% raw %}`: returns the raw text before the closing `endraw` tag, or that tag
    /// itself when the text is exhausted (the flag says whether raw mode continues).
    fn read_endraw_or_raw_content(&mut self, raw_begin: usize) -> LexResult<(TopToken, bool)> {
        let begin = self.p;
        let mut left_pos = self.read_to(b"{%").map_or(usize::MAX, |p| p - 2);
        while self.p < self.n {
            if self.peek_is(0, b'-') {
                self.p += 1;
            }
            let ident = self.read_identifier();
            let text = slice_string(self.src, ident.0, ident.1);
            if text.strip_suffix('-').unwrap_or(&text) != "endraw" {
                left_pos = self.read_to(b"{%").map_or(usize::MAX, |p| p - 2);
                continue;
            }
            while self.p <= self.n {
                if self.rmatches(b"%}") {
                    let end = self.p;
                    if begin == left_pos {
                        let d = Delimited::new(self.src, begin, end, (begin + 2, end - 2));
                        let tok = tag_token(self.src, d, "illegal tag syntax, tag name expected")?;
                        return Ok((TopToken::Tag(tok), false));
                    }
                    self.p = left_pos;
                    let html = TopToken::Html {
                        begin,
                        end: left_pos,
                        trim_left: 0,
                        trim_right: 0,
                    };
                    return Ok((html, true));
                }
                if self.rmatches(b"{%") {
                    break;
                }
                self.p += 1;
            }
        }
        let msg = format!("raw {} not closed", self.snapshot(raw_begin));
        Err(LexError::at(msg, begin))
    }

    /// The lines of a `{% liquid %}` tag, each a tag token without delimiters.
    pub(super) fn read_liquid_tag_tokens(&mut self) -> LexResult<Vec<TagToken>> {
        let mut tokens = Vec::new();
        while self.p < self.n {
            self.skip_blank();
            if self.end() {
                break;
            }
            let begin = self.p;
            self.read_to_delimiter(b"\n", false)?;
            let end = self.p;
            let d = Delimited {
                trim_left: false,
                trim_right: false,
                ..Delimited::new(self.src, begin, end, (begin, end))
            };
            tokens.push(tag_token(self.src, d, "illegal liquid tag syntax")?);
        }
        Ok(tokens)
    }

    // ----- names -----

    /// Reads an identifier (after blanks); its range, possibly empty.
    pub(super) fn read_identifier(&mut self) -> (usize, usize) {
        self.skip_blank();
        let begin = self.p;
        while !self.end() && is_word(self.peek()) {
            self.p += 1;
        }
        (begin, self.p)
    }

    pub(super) fn read_identifier_string(&mut self) -> String {
        let (a, b) = self.read_identifier();
        slice_string(self.src, a, b)
    }

    fn read_tag_name(&mut self) -> String {
        self.skip_blank();
        if self.src.get(self.p) == Some(&(b'#' as u16)) {
            self.p += 1;
            return "#".to_owned();
        }
        self.read_identifier_string()
    }

    // ----- values -----

    /// Reads a value expression followed by filters (`a | f: x`).
    pub(super) fn read_filtered_value(&mut self) -> LexResult<FilteredValue> {
        let begin = self.p;
        let expr = self.read_expression()?;
        if expr.postfix.is_empty() {
            return Err(self.error(format!(
                "invalid value expression: {}",
                self.snapshot(self.p)
            )));
        }
        let filters = self.read_filters()?;
        Ok(FilteredValue {
            expr,
            filters,
            text: slice_string(self.src, begin, self.p),
        })
    }

    fn read_expression(&mut self) -> LexResult<Expr> {
        let mut ops: Vec<Op> = Vec::new();
        let mut postfix = Vec::new();
        while self.p < self.n {
            if let Some(op) = self.read_operator() {
                while let Some(top) = ops.last() {
                    if top.precedence() > op.precedence() {
                        postfix.push(super::ast::ExprItem::Op(*top));
                        ops.pop();
                    } else {
                        break;
                    }
                }
                ops.push(op);
                continue;
            }
            if let Some(v) = self.read_value()? {
                postfix.push(super::ast::ExprItem::Operand(v));
                continue;
            }
            break;
        }
        while let Some(op) = ops.pop() {
            postfix.push(super::ast::ExprItem::Op(op));
        }
        Ok(Expr { postfix })
    }

    /// Matches the longest word from `words` at `p`; a word ending in a word character needs a
    /// boundary after the match.
    fn match_words(&self, words: &[&str]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        // The trie walk of liquidjs stops at the first unit no word continues with; `walk_end` is
        // where it stops, which is what the boundary test looks at.
        let mut walk_end = self.p;
        for (idx, w) in words.iter().enumerate() {
            let wb = w.as_bytes();
            let mut k = 0;
            while k < wb.len()
                && self.p + k < self.n
                && self.src.get(self.p + k) == Some(&(wb[k] as u16))
            {
                k += 1;
            }
            // Extend the walk as far as any word's prefix matches.
            walk_end = walk_end.max(self.p + k);
            if k == wb.len() && best.is_none_or(|(_, len)| wb.len() > len) {
                best = Some((idx, wb.len()));
            }
        }
        let (idx, len) = best?;
        let last = *words[idx].as_bytes().last()? as u16;
        if is_word(Some(last)) {
            let after = walk_end - self.p;
            if is_word(self.peek_at(after)) {
                return None;
            }
        }
        Some((idx, len))
    }

    fn read_operator(&mut self) -> Option<Op> {
        self.skip_blank();
        const WORDS: [&str; 10] = [
            "==", "!=", ">", "<", ">=", "<=", "contains", "not", "and", "or",
        ];
        let (idx, len) = self.match_words(&WORDS)?;
        self.p += len;
        Some(match idx {
            0 => Op::Eq,
            1 => Op::Ne,
            2 => Op::Gt,
            3 => Op::Lt,
            4 => Op::Ge,
            5 => Op::Le,
            6 => Op::Contains,
            7 => Op::Not,
            8 => Op::And,
            _ => Op::Or,
        })
    }

    fn read_literal(&mut self) -> Option<Lit> {
        self.skip_blank();
        const WORDS: [&str; 6] = ["true", "false", "nil", "null", "empty", "blank"];
        let (idx, len) = self.match_words(&WORDS)?;
        self.p += len;
        Some(match idx {
            0 => Lit::Bool(true),
            1 => Lit::Bool(false),
            2 | 3 => Lit::Nil,
            4 => Lit::Empty,
            _ => Lit::Blank,
        })
    }

    /// Reads one value: a literal, string, number or range, followed by property accesses.
    pub(super) fn read_value(&mut self) -> LexResult<Option<Operand>> {
        self.skip_blank();
        let mut variable = if let Some(l) = self.read_literal() {
            Some(Operand::Lit(l))
        } else if let Some(s) = self.read_quoted()? {
            Some(Operand::Lit(Lit::Str(s)))
        } else {
            self.read_number().map(|n| Operand::Lit(Lit::Num(n)))
        };
        if variable.is_none() && self.peek_is(0, b'(') {
            variable = Some(self.read_range()?);
        }
        let props = self.read_properties(variable.is_none())?;
        if props.is_empty() {
            return Ok(variable);
        }
        Ok(Some(Operand::Path {
            base: variable.map(Box::new),
            props,
        }))
    }

    /// The properties of a scope path (liquidjs's `readScopeValue`).
    pub(super) fn read_scope_props(&mut self) -> LexResult<Vec<Operand>> {
        self.read_properties(true)
    }

    fn read_properties(&mut self, is_begin: bool) -> LexResult<Vec<Operand>> {
        let mut props = Vec::new();
        loop {
            if self.peek_is(0, b'[') {
                self.p += 1;
                let prop = match self.read_value()? {
                    Some(v) => v,
                    None => Operand::Lit(Lit::Str(Box::from(""))),
                };
                if self.read_to(b"]").is_none() {
                    return Err(self.error("[ not closed"));
                }
                props.push(prop);
                continue;
            }
            if is_begin && props.is_empty() {
                let (a, b) = self.read_identifier();
                if b > a {
                    props.push(Operand::Lit(Lit::Str(slice_string(self.src, a, b).into())));
                    continue;
                }
            }
            if self.peek_is(0, b'.') && !self.peek_is(1, b'.') {
                self.p += 1;
                let (a, b) = self.read_identifier();
                if b == a {
                    break;
                }
                props.push(Operand::Lit(Lit::Str(slice_string(self.src, a, b).into())));
                continue;
            }
            break;
        }
        Ok(props)
    }

    fn read_number(&mut self) -> Option<f64> {
        self.skip_blank();
        let mut decimal = false;
        let mut digit = false;
        let mut k = 0;
        if self.peek_class(0) & SIGN != 0 {
            k += 1;
        }
        while self.p + k <= self.n {
            if self.peek_class(k) & NUMBER != 0 {
                digit = true;
                k += 1;
            } else if self.peek_is(k, b'.') && !self.peek_is(k + 1, b'.') {
                if decimal || !digit {
                    return None;
                }
                decimal = true;
                k += 1;
            } else {
                break;
            }
        }
        if digit && !is_word(self.peek_at(k)) {
            let text = slice_string(self.src, self.p, self.p + k);
            self.p += k;
            return Some(text.parse::<f64>().unwrap_or(f64::NAN));
        }
        None
    }

    fn read_range(&mut self) -> LexResult<Operand> {
        self.skip_blank();
        self.p += 1;
        let lhs = self.read_value_or_throw()?;
        self.skip_blank();
        if self.peek_is(0, b'.') && self.peek_is(1, b'.') {
            self.p += 2;
            let rhs = self.read_value_or_throw()?;
            self.skip_blank();
            let closed = self.peek_is(0, b')');
            self.p += 1;
            if !closed {
                return Err(self.error("invalid range syntax"));
            }
            return Ok(Operand::Range(Box::new(lhs), Box::new(rhs)));
        }
        Err(self.error("invalid range syntax"))
    }

    fn read_value_or_throw(&mut self) -> LexResult<Operand> {
        match self.read_value()? {
            Some(v) => Ok(v),
            None => Err(self.error(format!(
                "unexpected token {}, value expected",
                self.snapshot(self.p)
            ))),
        }
    }

    /// Reads a quoted string (unterminated strings run to the end); its decoded content.
    pub(super) fn read_quoted(&mut self) -> LexResult<Option<Box<str>>> {
        self.skip_blank();
        let begin = self.p;
        if self.peek_class(0) & QUOTE == 0 {
            return Ok(None);
        }
        let quote = self.src[begin];
        self.p += 1;
        let mut escaped = false;
        while self.p < self.n {
            self.p += 1;
            let c = self.src[self.p - 1];
            if c == quote && !escaped {
                break;
            }
            if escaped {
                escaped = false;
            } else if c == b'\\' as u16 {
                escaped = true;
            }
        }
        parse_string_literal(&self.src[begin..self.p]).map(|s| Some(s.into()))
    }

    fn read_filters(&mut self) -> LexResult<Vec<FilterCall>> {
        let mut filters = Vec::new();
        while let Some(f) = self.read_filter()? {
            filters.push(f);
        }
        Ok(filters)
    }

    fn read_filter(&mut self) -> LexResult<Option<FilterCall>> {
        self.skip_blank();
        if self.end() || self.peek_is(0, b')') || self.peek_is(0, b',') {
            return Ok(None);
        }
        let bar = self.peek_is(0, b'|');
        self.p += 1;
        if !bar {
            return Err(self.error("expected \"|\" before filter"));
        }
        let (a, b) = self.read_identifier();
        if a == b {
            if !self.end() {
                return Err(self.error("expected filter name"));
            }
            return Ok(None);
        }
        let name = slice_string(self.src, a, b);
        let mut args = Vec::new();
        self.skip_blank();
        if self.peek_is(0, b':') {
            loop {
                self.p += 1;
                if let Some(arg) = self.read_filter_arg()? {
                    args.push(arg);
                }
                self.skip_blank();
                if !(self.end()
                    || self.peek_is(0, b',')
                    || self.peek_is(0, b'|')
                    || self.peek_is(0, b')'))
                {
                    return Err(
                        self.error(format!("unexpected character {}", self.snapshot(self.p)))
                    );
                }
                if !self.peek_is(0, b',') {
                    break;
                }
            }
        } else if !(self.peek_is(0, b'|')
            || self.peek_is(0, b')')
            || self.peek_is(0, b',')
            || self.end())
        {
            return Err(self.error("expected \":\" after filter name"));
        }
        Ok(Some(FilterCall::new(name, args)))
    }

    fn read_filter_arg(&mut self) -> LexResult<Option<FilterArg>> {
        self.skip_blank();
        let key_begin = self.p;
        let Some(key) = self.read_value()? else {
            return Ok(None);
        };
        let key_end = self.p;
        self.skip_blank();
        if !self.peek_is(0, b':') {
            return Ok(Some(FilterArg::Positional(key)));
        }
        self.p += 1;
        let value = self.read_value()?;
        // liquidjs names the argument by the key token's text, which starts after blanks.
        let text_begin = key_text_begin(self.src, key_begin, key_end);
        Ok(Some(FilterArg::Keyword(
            slice_string(self.src, text_begin, key_end),
            value,
        )))
    }
}

/// Where the text of a value token starts (its first non-blank unit).
fn key_text_begin(src: &[u16], begin: usize, end: usize) -> usize {
    let mut i = begin;
    while i < end && src.get(i).copied().is_some_and(is_blank) {
        i += 1;
    }
    i
}

/// Builds a tag token from its delimited parts: reads the name and finds the arguments.
fn tag_token(src: &[u16], d: Delimited, no_name: &str) -> LexResult<TagToken> {
    let mut lx = Lexer::new(src, d.content.0, d.content.1);
    let name = lx.read_tag_name();
    if name.is_empty() {
        return Err(lx.error(no_name));
    }
    lx.skip_blank();
    Ok(TagToken {
        d,
        name,
        args_at: lx.p,
    })
}

/// Decodes a quoted literal (quotes included) with JavaScript-like escapes.
fn parse_string_literal(raw: &[u16]) -> LexResult<String> {
    let mut out: Vec<u16> = Vec::with_capacity(raw.len());
    let len = raw.len();
    let at = |i: usize| raw.get(i).copied();
    let is_hex =
        |c: Option<u16>| c.is_some_and(|c| (c as u8 as u16 == c) && (c as u8).is_ascii_hexdigit());
    let is_oct = |c: Option<u16>| c.is_some_and(|c| (b'0' as u16..=b'7' as u16).contains(&c));
    let hex_val = |c: u16| -> u32 {
        let c = c as u32;
        if c >= 97 {
            c - 87
        } else if c >= 65 {
            c - 55
        } else {
            c - 48
        }
    };
    let mut i = 1;
    while i + 1 < len {
        let c = raw[i];
        if c != b'\\' as u16 {
            out.push(c);
            i += 1;
            continue;
        }
        let next = at(i + 1);
        let simple = next.and_then(|n| match n {
            0x62 => Some(0x08),
            0x66 => Some(0x0c),
            0x6e => Some(0x0a),
            0x72 => Some(0x0d),
            0x74 => Some(0x09),
            0x76 => Some(0x0b),
            _ => None,
        });
        if let Some(s) = simple {
            out.push(s);
            i += 2;
        } else if next == Some(b'u' as u16) {
            let mut val: u32 = 0;
            let mut j = i + 2;
            while j <= i + 5 {
                match at(j) {
                    Some(c) if is_hex(Some(c)) => {
                        val = val * 16 + hex_val(c);
                        j += 1;
                    }
                    Some(_) => break,
                    // JavaScript tests the string "undefined" here, which holds a hex digit, and
                    // then fails reading a unit past the end.
                    None => {
                        return Err(LexError {
                            msg: "Cannot read properties of undefined (reading 'charCodeAt')"
                                .to_owned(),
                            pos: None,
                        });
                    }
                }
            }
            out.push(val as u16);
            i = j;
        } else if !is_oct(next) {
            if let Some(n) = next {
                out.push(n);
            }
            i += 2;
        } else {
            let mut j = i + 1;
            let mut val: u32 = 0;
            while j <= i + 3 && is_oct(at(j)) {
                val = val * 8 + hex_val(raw[j]);
                j += 1;
            }
            out.push(val as u16);
            i = j;
        }
    }
    Ok(String::from_utf16_lossy(&out))
}

/// Applies `{{-`/`-}}`/`{%-`/`-%}` trimming to the neighbouring text tokens (greedy mode: every
/// blank, then one newline).
fn whitespace_control(tokens: &mut [TopToken], src: &[u16]) {
    let mut in_raw = false;
    for i in 0..tokens.len() {
        let (trim_left, trim_right, name) = match &tokens[i] {
            TopToken::Html { .. } => continue,
            TopToken::Output(d) => (d.trim_left, d.trim_right, 0),
            TopToken::Tag(t) => (
                t.d.trim_left,
                t.d.trim_right,
                match t.name.as_str() {
                    "raw" => 1,
                    "endraw" => 2,
                    _ => 0,
                },
            ),
        };
        if !in_raw && trim_left && i > 0 {
            if let TopToken::Html {
                begin,
                end,
                trim_right,
                ..
            } = &mut tokens[i - 1]
            {
                while *end > *begin + *trim_right
                    && src
                        .get(*end - 1 - *trim_right)
                        .copied()
                        .is_some_and(is_blank)
                {
                    *trim_right += 1;
                }
            }
        }
        match name {
            1 => in_raw = true,
            2 => in_raw = false,
            _ => {}
        }
        if !in_raw && trim_right {
            if let Some(TopToken::Html {
                begin, trim_left, ..
            }) = tokens.get_mut(i + 1)
            {
                while src.get(*begin + *trim_left).copied().is_some_and(is_blank) {
                    *trim_left += 1;
                }
                if src.get(*begin + *trim_left) == Some(&(b'\n' as u16)) {
                    *trim_left += 1;
                }
            }
        }
    }
}
