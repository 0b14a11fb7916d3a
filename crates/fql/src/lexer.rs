//! The tokenizer: turns trigger source into tokens on demand, one at a time.
//!
//! Tokens are identifiers (dotted field paths with `\` escapes, keywords), double-quoted strings
//! without escapes, numbers (`-5`, `1.5`), the operators `=`, `!=`, `<`, `<=`, `>`, `>=`, `!`, and
//! `(`, `)`, `,`. Unlike Segment's lexer no whitespace is required around operators or after
//! literals (see the crate docs). Characters that start no token become [`TokenKind::Invalid`]
//! so the parser can report them with what it expected at that point; malformed literals
//! (unterminated strings, `1.`, a lone `-`) are reported by the lexer itself.

use crate::ParseError;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// An identifier with escapes resolved (`properties.property 1` for `properties.property\ 1`).
    Ident(String),
    /// A double-quoted string's contents.
    Str(String),
    /// A number literal.
    Number(f64),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Bang,
    LParen,
    RParen,
    Comma,
    /// A character that starts no token.
    Invalid,
    /// The end of the input.
    Eos,
}

/// A token and where it is in the source (byte offsets).
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Converts a byte offset into a one-based column counted in characters.
pub(crate) fn column_at(src: &str, offset: usize) -> usize {
    src.get(..offset)
        .map_or(1, |prefix| prefix.chars().count() + 1)
}

/// The on-demand tokenizer over one source string.
pub(crate) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    pub(crate) fn new(src: &'s str) -> Lexer<'s> {
        Lexer { src, pos: 0 }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, offset: usize, message: String) -> ParseError {
        ParseError {
            column: column_at(self.src, offset),
            message,
        }
    }

    /// Describes the character at the current position for an error message.
    fn found_here(&self) -> String {
        match self.peek_char() {
            None => "end of input".to_owned(),
            Some(c) => format!("'{}'", c.escape_debug()),
        }
    }

    /// Reads the next token, or an error for a malformed literal.
    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        while let Some(c) = self.peek_char() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::Eos,
                start,
                end: start,
            });
        };
        let kind = match c {
            '"' => self.string(start)?,
            '\'' => {
                return Err(self.error(
                    start,
                    "expected a double-quoted string but found a single quote (Segment keeps \
                     single quotes as part of the value, so such a trigger never matches)"
                        .to_owned(),
                ));
            }
            '0'..='9' | '-' | '+' => self.number(start)?,
            '=' => TokenKind::Eq,
            '!' if self.peek_char() == Some('=') => {
                self.pos += 1;
                TokenKind::Ne
            }
            '!' => TokenKind::Bang,
            '<' if self.peek_char() == Some('=') => {
                self.pos += 1;
                TokenKind::Le
            }
            '<' => TokenKind::Lt,
            '>' if self.peek_char() == Some('=') => {
                self.pos += 1;
                TokenKind::Ge
            }
            '>' => TokenKind::Gt,
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            ',' => TokenKind::Comma,
            c if c.is_alphabetic() || c == '_' => {
                let mut name = String::from(c);
                self.ident_rest(&mut name)?;
                TokenKind::Ident(name)
            }
            '\\' => {
                let mut name = String::new();
                self.escape(start, &mut name)?;
                self.ident_rest(&mut name)?;
                TokenKind::Ident(name)
            }
            _ => TokenKind::Invalid,
        };
        Ok(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    fn string(&mut self, start: usize) -> Result<TokenKind, ParseError> {
        let body_start = self.pos;
        match self.src[body_start..].find('"') {
            Some(len) => {
                self.pos = body_start + len + 1;
                Ok(TokenKind::Str(
                    self.src[body_start..body_start + len].to_owned(),
                ))
            }
            None => {
                self.pos = self.src.len();
                Err(self.error(
                    self.pos,
                    format!(
                        "expected '\"' to close the string starting at column {} but found end \
                         of input",
                        column_at(self.src, start)
                    ),
                ))
            }
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self, start: usize) -> Result<TokenKind, ParseError> {
        // The first character (a digit or a sign) has been consumed; step back to re-read digits.
        self.pos = start;
        if matches!(self.peek_char(), Some('-' | '+')) {
            self.pos += 1;
        }
        if self.digits() == 0 {
            return Err(self.error(
                self.pos,
                format!(
                    "expected a digit after '{}' but found {}",
                    &self.src[start..self.pos],
                    self.found_here()
                ),
            ));
        }
        if self.peek_char() == Some('.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected a digit after '{}' but found {}",
                        &self.src[start..self.pos],
                        self.found_here()
                    ),
                ));
            }
        }
        let text = &self.src[start..self.pos];
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(TokenKind::Number(n)),
            _ => Err(self.error(
                start,
                format!(
                    "expected a number within the range of a 64-bit float but found '{}'",
                    crate::parser::shorten(text)
                ),
            )),
        }
    }

    /// Reads `\x` (the backslash is at `start` and already consumed) and appends `x` to `name`.
    fn escape(&mut self, start: usize, name: &mut String) -> Result<(), ParseError> {
        match self.bump() {
            Some(c) => {
                name.push(c);
                Ok(())
            }
            None => Err(self.error(
                start,
                "expected a character after '\\' but found end of input".to_owned(),
            )),
        }
    }

    fn ident_rest(&mut self, name: &mut String) -> Result<(), ParseError> {
        while let Some(c) = self.peek_char() {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                self.pos += c.len_utf8();
                name.push(c);
            } else if c == '\\' {
                let at = self.pos;
                self.pos += 1;
                self.escape(at, name)?;
            } else {
                break;
            }
        }
        Ok(())
    }
}
