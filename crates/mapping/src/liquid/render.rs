//! Rendering: the scope chain (assigned variables over the event), property lookup with liquidjs's
//! `size`/`first`/`last`, the operators, and liquidjs's memory accounting.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ast::{Branch, Expr, ExprItem, FilterArg, FilteredValue, Lit, Node, Op, Operand, Pos};
use super::filters;
use super::value::{LVal, js_compare, strict_equals};

/// liquidjs's `memoryLimit` as Segment configures it.
const MEMORY_LIMIT: f64 = 1e8;

/// Our own bound on the text one render produces in total (outputs, captures, filter results),
/// in bytes; liquidjs has a render time limit instead.
pub(super) const WORK_LIMIT: usize = 50_000_000;

/// Our bound on one string value, in bytes.
pub(super) const MAX_STRING_BYTES: usize = 10_000_000;

/// Our bound on the length of a range.
const MAX_RANGE_LEN: f64 = 1_000_000.0;

/// liquidjs's message when the memory limit is exceeded.
pub(super) const MEMORY_MESSAGE: &str = "memory alloc limit exceeded";

/// A render error: the message, without the position suffix (unless it starts with
/// [`LOCATED`]).
pub(super) type Fail = String;

/// Marks a render error that already carries its position (liquidjs does not wrap its own
/// errors again).
pub(super) const LOCATED: char = '\u{1}';
pub(super) type RResult<T> = Result<T, Fail>;

/// Where a failing node is, for the `, line:N, col:M` suffix.
pub(super) struct Located {
    pub(super) msg: String,
    /// `None` when the message already ends with its position.
    pub(super) pos: Option<Pos>,
}

/// The render state.
pub(super) struct Ctx<'a> {
    /// The event (liquidjs's `environments`).
    env: Option<&'a Map<String, Value>>,
    /// Counters written by `increment`/`decrement`, which liquidjs stores on the event itself.
    counters: HashMap<String, f64>,
    /// Assigned variables (the bottom scope) and the `block` scopes above it.
    scopes: Vec<HashMap<&'a str, LVal<'a>>>,
    cycles: HashMap<String, usize>,
    /// Set by `break`/`continue`, which outside a loop stop the rest of the template.
    stopped: bool,
    memory: f64,
    work: usize,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(payload: &'a Value) -> Ctx<'a> {
        Ctx {
            env: payload.as_object(),
            counters: HashMap::new(),
            scopes: vec![HashMap::new()],
            cycles: HashMap::new(),
            stopped: false,
            memory: 0.0,
            work: 0,
        }
    }

    /// liquidjs's `memoryLimit.use(n)`.
    pub(super) fn use_memory(&mut self, n: f64) -> RResult<()> {
        if n > 0.0 {
            if self.memory + n > MEMORY_LIMIT || n.is_infinite() {
                return Err(MEMORY_MESSAGE.to_owned());
            }
            self.memory += n;
        }
        Ok(())
    }

    /// Charges our own work budget for `n` bytes of produced text.
    pub(super) fn use_work(&mut self, n: usize) -> RResult<()> {
        self.work = self.work.saturating_add(n);
        if self.work > WORK_LIMIT || n > MAX_STRING_BYTES {
            return Err(MEMORY_MESSAGE.to_owned());
        }
        Ok(())
    }

    /// Renders nodes into `out`; an error carries the position of the innermost failing node.
    pub(super) fn render_nodes(
        &mut self,
        nodes: &'a [Node],
        out: &mut String,
    ) -> Result<(), Located> {
        for node in nodes {
            self.render_node(node, out)?;
            if self.stopped {
                break;
            }
        }
        Ok(())
    }

    fn render_node(&mut self, node: &'a Node, out: &mut String) -> Result<(), Located> {
        let at = |pos: Pos| {
            move |msg: String| match msg.strip_prefix(LOCATED) {
                Some(done) => Located {
                    msg: done.to_owned(),
                    pos: None,
                },
                None => Located {
                    msg,
                    pos: Some(pos),
                },
            }
        };
        match node {
            Node::Text(s) => {
                self.use_work(s.len())
                    .map_err(at(Pos { line: 1, col: 1 }))?;
                out.push_str(s);
            }
            Node::Output(v, pos) | Node::Echo(Some(v), pos) => {
                let val = self.eval_filtered(v).map_err(at(*pos))?;
                self.write(&val, out).map_err(at(*pos))?;
            }
            Node::Echo(None, _) | Node::Nothing => {}
            Node::Assign(key, v, pos) => {
                let val = self.eval_filtered(v).map_err(at(*pos))?;
                self.scopes[0].insert(key, val);
            }
            Node::Capture(key, body) => {
                let mut buf = String::new();
                self.render_nodes(body, &mut buf)?;
                self.scopes[0].insert(key, LVal::string(buf));
            }
            Node::If(branches, else_body, pos) => {
                let body = self.choose(branches, else_body).map_err(at(*pos))?;
                self.render_nodes(body, out)?;
            }
            Node::Increment(name) | Node::Decrement(name) => {
                let current = self.counter(name);
                let next = if matches!(node, Node::Increment(_)) {
                    current + 1.0
                } else {
                    current - 1.0
                };
                self.counters.insert(name.clone(), next);
                let shown = if matches!(node, Node::Increment(_)) {
                    current
                } else {
                    next
                };
                LVal::Num(shown).write_liquid(out);
            }
            Node::Cycle {
                group,
                candidates,
                fingerprint,
                pos,
            } => {
                let key = match group {
                    Some(g) => {
                        let v = self.eval_operand(g).map_err(at(*pos))?;
                        format!("cycle:group:{}", v.js_string())
                    }
                    None => fingerprint.clone(),
                };
                let idx = *self.cycles.get(&key).unwrap_or(&0);
                let next = if idx + 1 < candidates.len() {
                    idx + 1
                } else {
                    0
                };
                self.cycles.insert(key, next);
                if let Some(c) = candidates.get(idx) {
                    let val = self.eval_filtered(c).map_err(at(*pos))?.to_value();
                    // A tag's returned value is written only when it is JavaScript-truthy.
                    if val.js_truthy() {
                        self.write(&val, out).map_err(at(*pos))?;
                    }
                }
            }
            Node::Block(body, is_block) => {
                if *is_block {
                    let mut scope = HashMap::new();
                    scope.insert("block", LVal::BlockDrop);
                    self.scopes.push(scope);
                    let res = self.render_nodes(body, out);
                    self.scopes.pop();
                    res?;
                } else {
                    self.render_nodes(body, out)?;
                }
            }
            Node::Raw(s) => out.push_str(s),
            Node::Break => self.stopped = true,
        }
        if out.len() > MAX_STRING_BYTES {
            return Err(Located {
                msg: MEMORY_MESSAGE.to_owned(),
                pos: Some(node_pos(node)),
            });
        }
        Ok(())
    }

    fn write(&mut self, val: &LVal<'a>, out: &mut String) -> RResult<()> {
        let before = out.len();
        val.to_value().write_liquid(out);
        self.use_work(out.len() - before)
    }

    fn choose(&mut self, branches: &'a [Branch], else_body: &'a [Node]) -> RResult<&'a [Node]> {
        for b in branches {
            let v = self.eval_filtered(&b.cond)?.to_value();
            if v.truthy() == b.when_truthy {
                return Ok(&b.body);
            }
        }
        Ok(else_body)
    }

    fn counter(&self, name: &str) -> f64 {
        if let Some(n) = self.counters.get(name) {
            return *n;
        }
        match self.env.and_then(|m| m.get(name)) {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    // ----- evaluation -----

    pub(super) fn eval_filtered(&mut self, v: &'a FilteredValue) -> RResult<LVal<'a>> {
        let mut val = self.eval_expr(&v.expr)?;
        for f in &v.filters {
            let mut args = Vec::with_capacity(f.args.len());
            for a in &f.args {
                args.push(match a {
                    FilterArg::Positional(o) => filters::Arg::Pos(self.eval_operand(o)?),
                    FilterArg::Keyword(k, o) => {
                        let v = match o {
                            Some(o) => self.eval_operand(o)?,
                            None => LVal::Undef,
                        };
                        filters::Arg::Kw(k.as_str(), v)
                    }
                });
            }
            val = filters::apply(self, f, val, args)?;
            if let Some(s) = val.as_str() {
                if s.len() > MAX_STRING_BYTES {
                    return Err(MEMORY_MESSAGE.to_owned());
                }
            }
        }
        Ok(val)
    }

    fn eval_expr(&mut self, e: &'a Expr) -> RResult<LVal<'a>> {
        match e.postfix.as_slice() {
            [ExprItem::Operand(o)] => return self.eval_operand(o),
            // A lone operator evaluates as a token without a value.
            [ExprItem::Op(_)] => return Ok(LVal::Undef),
            _ => {}
        }
        let mut stack: Vec<LVal<'a>> = Vec::new();
        for item in &e.postfix {
            let v = match item {
                ExprItem::Operand(o) => self.eval_operand(o)?,
                ExprItem::Op(op) => {
                    let r = stack.pop().unwrap_or(LVal::Undef);
                    if *op == Op::Not {
                        LVal::Bool(!r.to_value().truthy())
                    } else {
                        let l = stack.pop().unwrap_or(LVal::Undef);
                        LVal::Bool(binary(*op, &l, &r))
                    }
                }
            };
            stack.push(v);
        }
        Ok(stack.into_iter().next().unwrap_or(LVal::Undef))
    }

    pub(super) fn eval_operand(&mut self, o: &'a Operand) -> RResult<LVal<'a>> {
        match o {
            Operand::Lit(l) => Ok(match l {
                Lit::Num(n) => LVal::Num(*n),
                Lit::Str(s) => LVal::JStr(s),
                Lit::Bool(b) => LVal::Bool(*b),
                Lit::Nil => LVal::NilDrop,
                Lit::Empty => LVal::EmptyDrop,
                Lit::Blank => LVal::BlankDrop,
            }),
            Operand::Range(lo, hi) => {
                let lo = self.eval_operand(lo)?.to_value().js_number().trunc();
                let hi = self.eval_operand(hi)?.to_value().js_number().trunc();
                let len = hi - lo + 1.0;
                self.use_memory(len)?;
                if len > MAX_RANGE_LEN {
                    return Err(MEMORY_MESSAGE.to_owned());
                }
                let mut items = Vec::new();
                if len > 0.0 {
                    let mut i = lo;
                    while i < hi + 1.0 {
                        items.push(LVal::Num(i));
                        i += 1.0;
                    }
                }
                Ok(LVal::array(items))
            }
            Operand::Path { base, props } => {
                let mut props = props.iter();
                let mut cur = match base {
                    Some(b) => self.eval_operand(b)?,
                    None => {
                        let Some(first) = props.next() else {
                            return Ok(LVal::Undef);
                        };
                        let key = self.eval_key(first)?;
                        self.lookup_root(&key)
                    }
                };
                for p in props {
                    let key = self.eval_key(p)?;
                    cur = read_property(&cur, &key);
                }
                Ok(cur)
            }
        }
    }

    /// A property key: names are used as written, other values after `toValue`.
    fn eval_key(&mut self, p: &'a Operand) -> RResult<LVal<'a>> {
        match p {
            Operand::Lit(Lit::Str(s)) => Ok(LVal::JStr(s)),
            other => Ok(self.eval_operand(other)?.to_value()),
        }
    }

    /// Finds a variable: assigned scopes (innermost first), then the event, else nothing.
    fn lookup_root(&self, key: &LVal<'a>) -> LVal<'a> {
        let name = key_string(key);
        for scope in self.scopes.iter().rev() {
            if let Some(v) = scope.get(&*name) {
                return v.clone();
            }
        }
        if let Some(n) = self.counters.get(&*name) {
            return LVal::Num(*n);
        }
        if let Some(env) = self.env {
            if let Some(v) = env.get(&*name) {
                return LVal::from_json(v);
            }
        }
        // The key is looked up on an empty globals object, where only `size` finds something.
        if &*name == "size" {
            LVal::Num(0.0)
        } else {
            LVal::Undef
        }
    }
}

fn node_pos(node: &Node) -> Pos {
    match node {
        Node::Output(_, p)
        | Node::Assign(_, _, p)
        | Node::If(_, _, p)
        | Node::Echo(_, p)
        | Node::Cycle { pos: p, .. } => *p,
        _ => Pos { line: 1, col: 1 },
    }
}

/// A binary operator on raw operands (drops compare through their own rules).
fn binary(op: Op, l: &LVal<'_>, r: &LVal<'_>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let ordered = |want: &[std::cmp::Ordering]| {
        if l.is_comparable() || r.is_comparable() {
            return false;
        }
        js_compare(&l.to_value(), &r.to_value()).is_some_and(|o| want.contains(&o))
    };
    match op {
        Op::Eq => equals(l, r),
        Op::Ne => !equals(l, r),
        Op::Gt => ordered(&[Greater]),
        Op::Lt => ordered(&[Less]),
        Op::Ge => ordered(&[Greater, Equal]),
        Op::Le => ordered(&[Less, Equal]),
        Op::Contains => contains(l, r),
        Op::And => l.to_value().truthy() && r.to_value().truthy(),
        Op::Or => l.to_value().truthy() || r.to_value().truthy(),
        Op::Not => !r.to_value().truthy(),
    }
}

/// liquidjs's `equals`.
pub(super) fn equals(l: &LVal<'_>, r: &LVal<'_>) -> bool {
    if l.is_comparable() {
        return drop_equals(l, r);
    }
    if r.is_comparable() {
        return drop_equals(r, l);
    }
    let (l, r) = (l.to_value(), r.to_value());
    if let Some(la) = l.as_array() {
        let Some(ra) = r.as_array() else {
            return false;
        };
        return la.len() == ra.len() && la.iter().zip(ra.iter()).all(|(a, b)| equals(&a, &b));
    }
    strict_equals(&l, &r)
}

/// `nil == v`, `empty == v`, `blank == v`.
fn drop_equals(d: &LVal<'_>, v: &LVal<'_>) -> bool {
    match d {
        LVal::NilDrop => v.to_value().is_nil(),
        LVal::BlankDrop => {
            if matches!(v, LVal::Bool(false)) || v.to_value().is_nil() {
                return true;
            }
            if let Some(s) = v.as_str() {
                return s.chars().all(super::value::is_js_space);
            }
            empty_equals(v)
        }
        _ => empty_equals(v),
    }
}

fn empty_equals(v: &LVal<'_>) -> bool {
    if matches!(v, LVal::EmptyDrop | LVal::BlankDrop) {
        return false;
    }
    let v = v.to_value();
    if let Some(n) = v.length() {
        return n == 0;
    }
    match v {
        LVal::Obj(o) => o.is_empty(),
        // `nil` and `block` have no own keys.
        LVal::BlockDrop => false,
        _ => false,
    }
}

fn contains(l: &LVal<'_>, r: &LVal<'_>) -> bool {
    let l = l.to_value();
    if let Some(arr) = l.as_array() {
        return arr.iter().any(|item| equals(&item, r));
    }
    if let Some(s) = l.as_str() {
        let needle = r.to_value().js_string();
        return s.contains(&*needle);
    }
    false
}

/// The property keys of an array or string that are indexes (`"0"`, `"12"`, not `"01"`).
fn index_of_key(key: &str) -> Option<usize> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

/// The UTF-16 unit at `i` of a string, as a one-unit string (U+FFFD for half a surrogate pair).
pub(super) fn string_unit(s: &str, i: usize) -> Option<String> {
    if s.is_ascii() {
        return s.get(i..i + 1).map(str::to_owned);
    }
    let unit = s.encode_utf16().nth(i)?;
    Some(String::from_utf16_lossy(&[unit]))
}

/// A value as a property key (JavaScript's `ToPropertyKey`), borrowed when it is a string.
fn key_string<'k>(key: &'k LVal<'_>) -> std::borrow::Cow<'k, str> {
    match key.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(key.js_string().to_string()),
    }
}

/// An own property of a value (no `size`/`first`/`last` magic).
pub(super) fn own_property<'a>(obj: &LVal<'a>, key: &LVal<'a>) -> LVal<'a> {
    let name = key_string(key);
    match obj {
        LVal::Obj(o) => o.get(&*name).map_or(LVal::Undef, LVal::from_json),
        LVal::Arr(_) | LVal::JArr(_) => {
            let arr = obj.as_array();
            if &*name == "length" {
                return LVal::Num(arr.map_or(0, |a| a.len()) as f64);
            }
            match (arr, index_of_key(&name)) {
                (Some(a), Some(i)) => a.get(i).unwrap_or(LVal::Undef),
                _ => LVal::Undef,
            }
        }
        LVal::Str(_) | LVal::JStr(_) => {
            let s = obj.as_str().unwrap_or_default();
            if &*name == "length" {
                return LVal::Num(super::value::u16_len(s) as f64);
            }
            match index_of_key(&name).and_then(|i| string_unit(s, i)) {
                Some(u) => LVal::string(u),
                None => LVal::Undef,
            }
        }
        _ => LVal::Undef,
    }
}

/// liquidjs's `readProperty`.
pub(super) fn read_property<'a>(obj: &LVal<'a>, key: &LVal<'a>) -> LVal<'a> {
    match obj {
        LVal::Undef => return LVal::Undef,
        LVal::Null => return LVal::Null,
        LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop => return LVal::Undef,
        LVal::BlockDrop => {
            return if key.as_str() == Some("super") {
                LVal::string("")
            } else {
                LVal::Undef
            };
        }
        _ => {}
    }
    if let (Some(arr), LVal::Num(n)) = (obj.as_array(), key) {
        let len = arr.len() as f64;
        let i = if *n < 0.0 { len + n } else { *n };
        if i >= 0.0 && i.fract() == 0.0 && i < len {
            return arr.get(i as usize).unwrap_or(LVal::Undef);
        }
        return LVal::Undef;
    }
    let value = own_property(obj, key);
    match key.as_str() {
        Some("size") => read_size(obj),
        Some("first") => match obj.as_array() {
            Some(a) => a.get(0).unwrap_or(LVal::Undef),
            None => value,
        },
        Some("last") => match obj.as_array() {
            Some(a) if a.len() > 0 => a.get(a.len() - 1).unwrap_or(LVal::Undef),
            Some(_) => LVal::Undef,
            None => value,
        },
        _ => value,
    }
}

/// liquidjs's `readSize`.
pub(super) fn read_size<'a>(obj: &LVal<'a>) -> LVal<'a> {
    if let LVal::Obj(o) = obj {
        return match o.get("size") {
            Some(v) => LVal::from_json(v),
            None => LVal::Num(o.len() as f64),
        };
    }
    if let Some(n) = obj.length() {
        return LVal::Num(n as f64);
    }
    match obj {
        // `Object.keys` of a drop: only `block` has an own key.
        LVal::NilDrop | LVal::EmptyDrop | LVal::BlankDrop => LVal::Num(0.0),
        LVal::BlockDrop => LVal::Num(1.0),
        _ => LVal::Undef,
    }
}

/// Looks `key` up the way a spawned context does on an item (the `where` filter): the item's
/// own properties, else an empty globals object.
pub(super) fn lookup_in_item<'a>(item: &LVal<'a>, key: &LVal<'a>) -> LVal<'a> {
    let name = key_string(key);
    let has = match item {
        LVal::Obj(o) => o.contains_key(&*name),
        LVal::Arr(_) | LVal::JArr(_) | LVal::Str(_) | LVal::JStr(_) => {
            &*name == "length"
                || index_of_key(&name).is_some_and(|i| item.length().is_some_and(|n| i < n))
        }
        _ => false,
    };
    if has {
        read_property(item, key)
    } else if &*name == "size" {
        LVal::Num(0.0)
    } else {
        LVal::Undef
    }
}
