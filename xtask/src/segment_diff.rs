//! The differential corpus: seeded cases that Segment's published packages and actionkit both
//! answer, so the two can be compared case by case.
//!
//! `cargo xtask segment-diff` writes three case files under `tools/segment-diff/data/`:
//! mapping-kit cases (a mapping and a payload), trigger cases (an FQL subscription and an event)
//! and Userpilot cases (an event sent through the destination's presets). The generator is
//! deterministic for a seed, so the files change only when the generator does. Then, unless
//! `--no-node` is given, it runs `tools/segment-diff/answer.js` (Node with Segment's
//! `@segment/actions-core` and `@segment/action-destinations`, pinned by the lockfile there), which
//! stores Segment's answers next to the cases. The comparison itself is the test
//! `crates/destinations/tests/segment_diff.rs`, which needs no Node.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

/// The seed of the committed corpus.
pub const DEFAULT_SEED: u64 = 20_261_206;

/// How many cases of each kind the committed corpus holds.
const MAPPING_CASES: usize = 4_000;
const TRIGGER_CASES: usize = 2_000;
const USERPILOT_CASES: usize = 400;

/// The line every case file starts with.
const GENERATED_BY: &str = "cargo xtask segment-diff";

/// Options of the task.
#[derive(Debug, Clone)]
pub struct Args {
    /// The generator's seed.
    pub seed: u64,
    /// Write the cases only; keep the stored answers.
    pub no_node: bool,
}

impl Args {
    /// Parses `[--seed N] [--no-node]`.
    pub fn parse(args: &[String]) -> std::result::Result<Args, String> {
        let mut out = Args {
            seed: DEFAULT_SEED,
            no_node: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--seed" => {
                    let value = it.next().ok_or("--seed needs a number")?;
                    out.seed = value
                        .parse()
                        .map_err(|_| format!("--seed expects a whole number, got {value:?}"))?;
                }
                "--no-node" => out.no_node = true,
                other => return Err(format!("unexpected argument for segment-diff: {other}")),
            }
        }
        Ok(out)
    }
}

/// Writes the corpus and, unless told not to, Segment's answers.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let dir = root.join("tools/segment-diff/data");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut corpus = Generator::new(args.seed);
    let mapping: Vec<Value> = (0..MAPPING_CASES).map(|i| corpus.mapping_case(i)).collect();
    let trigger: Vec<Value> = (0..TRIGGER_CASES).map(|i| corpus.trigger_case(i)).collect();
    let userpilot: Vec<Value> = (0..USERPILOT_CASES)
        .map(|i| corpus.userpilot_case(i))
        .collect();
    for (name, cases) in [
        ("mapping", &mapping),
        ("trigger", &trigger),
        ("userpilot", &userpilot),
    ] {
        let path = dir.join(format!("{name}.cases.json"));
        std::fs::write(&path, render_file(args.seed, cases))
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {} ({} cases)", path.display(), cases.len());
    }
    if args.no_node {
        eprintln!("--no-node: the stored answers were kept; they may not match the new cases");
        return Ok(());
    }
    let harness = root.join("tools/segment-diff");
    if !harness.join("node_modules/@segment/actions-core").is_dir() {
        eprintln!(
            "installing Segment's packages (npm ci in {})",
            harness.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&harness)
            .status()
            .context("run npm (Node.js and npm are needed to ask Segment's packages)")?;
        if !status.success() {
            bail!("npm ci in {} failed ({status})", harness.display());
        }
    }
    eprintln!("asking Segment's packages (node answer.js)");
    let status = Command::new("node")
        .arg("answer.js")
        .env("TZ", "UTC")
        .current_dir(&harness)
        .status()
        .context("run node (Node.js is needed to ask Segment's packages)")?;
    if !status.success() {
        bail!("node answer.js in {} failed ({status})", harness.display());
    }
    eprintln!(
        "compare with: cargo test -p actionkit-destinations --test segment_diff -- --nocapture"
    );
    Ok(())
}

/// One case a line, so a change to the generator shows as a readable diff.
fn render_file(seed: u64, cases: &[Value]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{{\"generated_by\": \"{GENERATED_BY}\",");
    let _ = writeln!(out, " \"seed\": {seed},");
    out.push_str(" \"cases\": [\n");
    for (i, case) in cases.iter().enumerate() {
        let sep = if i + 1 == cases.len() { "" } else { "," };
        let line = case.to_string().replace(LONE_SURROGATE, "\\ud83d");
        let _ = writeln!(out, "  {line}{sep}");
    }
    out.push_str(" ]}\n");
    out
}

/// Keys the generated payloads use; paths draw from the same list so that most of them resolve.
const KEYS: &[&str] = &[
    "name",
    "email",
    "plan",
    "price",
    "amount",
    "count",
    "tags",
    "items",
    "flag",
    "empty",
    "zero",
    "nothing",
    "nested",
    "date",
    "title",
    "id",
    "createdAt",
    "Name With Space",
    "ключ",
    "note",
];

/// Strings chosen for their edges: empty, blank, case mapping beyond ASCII, numbers and dates in
/// text, markup, separators and template syntax.
const STRINGS: &[&str] = &[
    "",
    " ",
    "hello",
    "Hello World",
    "Zoë Ångström",
    "straße",
    "İstanbul",
    "ǅemal",
    "東京タワー",
    "party 🎉 time",
    "a,b,c",
    "  padded  ",
    "<b>bold</b> & \"co\"",
    "line\nbreak",
    "tab\there",
    "42",
    "-3.5",
    "1e10",
    "0012",
    "true",
    "null",
    "2024-03-07",
    "2024-03-07T10:11:12Z",
    "2024-03-07T10:11:12.345+02:00",
    "2024-03-07 10:11:12",
    "March 7, 2024",
    "Thu, 07 Mar 2024 10:11:12 GMT",
    "03/07/2024",
    "not a date",
    "https://example.com/a b?c=d&e=é",
    "user@example.com",
    "a.b.c",
    "{{name}}",
    "$.name",
    "one two three four five six",
    "CamelCaseWord",
    "snake_case_word",
    "x",
    // Half of a surrogate pair, as JavaScript clients send it (see `LONE_SURROGATE`).
    "cut \u{e000}",
];

/// Stands for a lone UTF-16 surrogate, which a Rust string cannot hold: the case files spell it
/// as the escape `\ud83d`, which JavaScript reads as half of a surrogate pair.
const LONE_SURROGATE: char = '\u{e000}';

fn pick<'a, T: ?Sized>(rng: &mut ChaCha8Rng, items: &'a [&'a T]) -> &'a T {
    items[rng.random_range(0..items.len())]
}

/// The seeded generator.
struct Generator {
    rng: ChaCha8Rng,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    fn string(&mut self) -> String {
        pick(&mut self.rng, STRINGS).to_owned()
    }

    fn number(&mut self) -> Value {
        match self.below(16) {
            0 => json!(0),
            1 => json!(1),
            2 => json!(-1),
            3 => json!(2),
            4 => json!(7),
            5 => json!(1.5),
            6 => json!(0.1),
            7 => json!(2.675),
            8 => json!(-0.5),
            9 => json!(100),
            10 => json!(1e21),
            11 => json!(123_456_789),
            12 => json!(1_700_000_000),
            13 => json!(3.25),
            14 => json!(10.0),
            _ => json!(self.rng.random_range(-1000..1000)),
        }
    }

    /// A leaf or a small container, with the edge values the issue names.
    fn value(&mut self, depth: usize) -> Value {
        let containers = if depth < 2 { 4 } else { 0 };
        match self.below(12 + containers) {
            0..=4 => Value::String(self.string()),
            5..=7 => self.number(),
            8 => json!(true),
            9 => json!(false),
            10 => Value::Null,
            11 => match self.below(4) {
                0 => json!([]),
                1 => json!({}),
                2 => json!([1, 2, 3]),
                _ => json!(["a", "b"]),
            },
            12 | 13 => {
                let n = self.below(4);
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            _ => Value::Object(self.object(depth + 1, 4)),
        }
    }

    fn object(&mut self, depth: usize, max: usize) -> Map<String, Value> {
        let n = self.below(max + 1);
        let mut map = Map::new();
        for _ in 0..n {
            let key = pick(&mut self.rng, KEYS).to_owned();
            let value = self.value(depth);
            map.insert(key, value);
        }
        map
    }

    /// A Segment-like event: fixed top-level keys, random properties and traits.
    fn event(&mut self) -> Value {
        let kind = pick(
            &mut self.rng,
            &[
                "track", "track", "identify", "group", "page", "screen", "alias",
            ],
        );
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        if kind == "track" || self.chance(0.1) {
            let name = pick(
                &mut self.rng,
                &[
                    "Order Completed",
                    "Signed Up",
                    "order completed",
                    "Ünïcode Event",
                    "",
                    "Product Viewed",
                ],
            );
            event.insert("event".into(), json!(name));
        }
        if self.chance(0.8) {
            let id = match self.below(5) {
                0 => json!(""),
                1 => json!(12345),
                2 => Value::Null,
                _ => json!(format!("user-{}", self.below(100))),
            };
            event.insert("userId".into(), id);
        }
        if self.chance(0.6) {
            event.insert(
                "anonymousId".into(),
                json!(format!("anon-{}", self.below(100))),
            );
        }
        if kind == "group" || self.chance(0.1) {
            event.insert("groupId".into(), json!(format!("g-{}", self.below(10))));
        }
        event.insert(
            "messageId".into(),
            json!(format!("m-{}", self.below(10_000))),
        );
        event.insert("timestamp".into(), json!("2024-03-07T10:11:12.345Z"));
        let mut properties = self.object(0, 6);
        if self.chance(0.5) {
            properties.insert(
                "items".into(),
                json!([{"id": "p1", "price": 9.99, "qty": 2}, {"id": "p2", "price": 0, "qty": 1}]),
            );
        }
        if self.chance(0.01) {
            // JavaScript lists integer-like keys first; see the mapping crate's "Key order".
            properties.insert("10".into(), json!("ten"));
        }
        if self.chance(0.3) {
            properties.insert(
                "nested".into(),
                json!({"a": {"b": self.value(1)}, "list": [self.value(2), self.value(2)]}),
            );
        }
        event.insert("properties".into(), Value::Object(properties));
        let traits = self.object(0, 5);
        event.insert("traits".into(), Value::Object(traits));
        event.insert(
            "context".into(),
            json!({"ip": "203.0.113.9", "locale": "de-DE", "page": {"url": "https://example.com/p?q=1", "title": "Zoë's page"},
                   "device": {"type": pick(&mut self.rng, &["ios", "android", "web"])}}),
        );
        Value::Object(event)
    }

    /// A path as Segment's `@path` accepts it, in its several spellings.
    fn path(&mut self) -> String {
        let key = pick(&mut self.rng, KEYS);
        let top = pick(
            &mut self.rng,
            &["properties", "traits", "properties", "context"],
        );
        match self.below(20) {
            0 => format!("$.{top}"),
            1 => format!("{top}.{key}"),
            2 => format!("$.{top}.{key}.length"),
            3 => format!("$.{top}.items[0].id"),
            4 => format!("$.{top}.items.1.price"),
            5 => format!("$.{top}['{key}']"),
            6 => format!("$.{top}[\"{key}\"]"),
            7 => "$.properties.nested.a.b".to_owned(),
            8 => format!("$.{top}.{key}.0"),
            9 => pick(
                &mut self.rng,
                &["$.event", "$.userId", "$.anonymousId", "$.type"],
            )
            .to_owned(),
            10 => pick(
                &mut self.rng,
                &["$", "$.", "", "$..name", "$.missing.deeper"],
            )
            .to_owned(),
            11 => format!("$.{top}.items"),
            _ => format!("$.{top}.{key}"),
        }
    }

    /// A mapping value, possibly a directive, of bounded depth.
    fn mapping(&mut self, depth: usize) -> Value {
        if depth > 2 {
            return match self.below(3) {
                0 => json!({"@path": self.path()}),
                1 => self.value(2),
                _ => json!({"@template": self.template()}),
            };
        }
        match self.below(40) {
            0..=7 => json!({"@path": self.path()}),
            8..=9 => json!({"@template": self.template()}),
            10 => json!({"@literal": self.literal()}),
            11..=12 => self.if_directive(depth),
            13 => self.case_directive(),
            14..=15 => self.replace_directive(),
            16 => self.array_path(depth),
            17 => self.flatten(),
            18 => self.json_directive(),
            19 => self.merge(depth),
            20 => self.transform(depth),
            21 => json!({"@excludeWhenNull": self.mapping(depth + 1)}),
            22..=31 => json!({"@liquid": self.liquid()}),
            32..=33 => self.invalid(),
            34..=36 => {
                let mut map = Map::new();
                for i in 0..self.below(4) + 1 {
                    let key = format!(
                        "{}{}",
                        pick(&mut self.rng, KEYS),
                        if i > 0 { "_x" } else { "" }
                    );
                    let value = self.mapping(depth + 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            37 => {
                let n = self.below(3) + 1;
                Value::Array((0..n).map(|_| self.mapping(depth + 1)).collect())
            }
            _ => self.value(1),
        }
    }

    fn literal(&mut self) -> Value {
        match self.below(7) {
            0 => json!({"@path": "$.properties.name"}),
            1 => json!({"a": {"@template": "{{x}}"}, "b": [1, {"@path": "$.y"}]}),
            2 => json!({"@literal": {"@path": "$.userId"}}),
            3 => json!([{"@literal": null}, {"x": {"@path": "$.missing"}}]),
            _ => self.value(0),
        }
    }

    fn template(&mut self) -> String {
        let mut out = String::new();
        for _ in 0..self.below(3) + 1 {
            match self.below(8) {
                0 => out.push_str(pick(
                    &mut self.rng,
                    &["Hi ", " - ", "", "Zoë ", "{{", "}}", "{}"],
                )),
                1 => out.push_str("{{ properties.name }}"),
                2 => out.push_str("{{missing}}"),
                3 => out.push_str("{{properties.items}}"),
                4 => out.push_str("{{properties.nested}}"),
                5 => {
                    let key = pick(&mut self.rng, KEYS);
                    let _ = write!(out, "{{{{traits.{key}}}}}");
                }
                6 => out.push_str("{{properties.items.0.id}}"),
                _ => {
                    let key = pick(&mut self.rng, KEYS);
                    let _ = write!(out, "{{{{properties.{key}}}}}");
                }
            }
        }
        out
    }

    fn if_directive(&mut self, depth: usize) -> Value {
        let cond = pick(
            &mut self.rng,
            &[
                "exists", "blank", "exists", "blank", "exists", "blank", "exists", "missing",
            ],
        );
        let mut map = Map::new();
        map.insert("@if".to_owned(), {
            let mut inner = Map::new();
            if cond != "missing" {
                inner.insert(cond.to_owned(), json!({"@path": self.path()}));
            }
            if self.chance(0.85) {
                inner.insert("then".into(), self.mapping(depth + 1));
            }
            if self.chance(0.7) {
                inner.insert("else".into(), self.mapping(depth + 1));
            }
            Value::Object(inner)
        });
        Value::Object(map)
    }

    fn case_directive(&mut self) -> Value {
        let op = pick(
            &mut self.rng,
            &["upper", "lower", "upper", "lower", "title", ""],
        );
        match self.below(8) {
            0 => json!({"@case": "upper"}),
            1 => json!({"@case": {"value": {"@path": self.path()}}}),
            _ => json!({"@case": {"operator": op, "value": {"@path": self.path()}}}),
        }
    }

    fn replace_directive(&mut self) -> Value {
        let pattern = match self.below(12) {
            0 => "".to_owned(),
            1 => ".".to_owned(),
            2 => "a*".to_owned(),
            3 => "(x)".to_owned(),
            4 => "$".to_owned(),
            5 => "x".repeat(10 + self.below(60)),
            6 => "ab".repeat(200),
            7 => " ".to_owned(),
            8 => "ë".to_owned(),
            9 => "E".to_owned(),
            _ => pick(&mut self.rng, &["o", "-", "_", "l", "a", "1", "T"]).to_owned(),
        };
        let mut opts = Map::new();
        if self.chance(0.95) {
            opts.insert("pattern".into(), json!(pattern));
        }
        if self.chance(0.9) {
            let r = pick(&mut self.rng, &["", "_", "$&", "$1", "X", "é", "$$"]);
            opts.insert("replacement".into(), json!(r));
        }
        if self.chance(0.3) {
            opts.insert("ignorecase".into(), json!(self.chance(0.5)));
        }
        if self.chance(0.3) {
            opts.insert("global".into(), json!(self.chance(0.5)));
        }
        if self.chance(0.2) {
            let p2 = pick(&mut self.rng, &["l", "", "x", "o"]);
            opts.insert("pattern2".into(), json!(p2));
            let r2 = pick(&mut self.rng, &["L", "", "y"]);
            opts.insert("replacement2".into(), json!(r2));
        }
        let value = if self.chance(0.8) {
            json!({"@path": self.path()})
        } else {
            json!(self.string())
        };
        opts.insert("value".into(), value);
        json!({"@replace": opts})
    }

    fn array_path(&mut self, depth: usize) -> Value {
        let path = pick(
            &mut self.rng,
            &[
                "$.properties.items",
                "$.properties.tags",
                "$.properties.nested.list",
                "$.properties",
                "$.missing",
            ],
        );
        match self.below(5) {
            0 => json!({"@arrayPath": [path]}),
            1 => {
                json!({"@arrayPath": [path, {"id": {"@path": "$.id"}, "cost": {"@path": "$.price"}}]})
            }
            2 => json!({"@arrayPath": path}),
            _ => json!({"@arrayPath": [path, {"x": self.mapping(depth + 1)}]}),
        }
    }

    fn flatten(&mut self) -> Value {
        let sep = match self.below(6) {
            0 => json!({"@path": "$.properties.name"}),
            1 => json!(""),
            _ => json!(pick(&mut self.rng, &[".", "_", "->", "/"])),
        };
        let value = match self.below(8) {
            0 => json!({"@path": "$.properties"}),
            1 => json!({"@path": "$.properties.nested"}),
            2 => json!({"@path": "$.context"}),
            3 => self.value(0),
            4 => json!({"a": {"b": [1, {"c": null}], "d": {}}, "e": [], "a.b": "dup"}),
            5 => json!([{"x": 1}, [2, [3]]]),
            6 => json!({"@literal": {"k": {"@path": "$.userId"}, "n": {"m": null}}}),
            _ => json!({"@path": self.path()}),
        };
        let mut opts = Map::new();
        if self.below(16) != 0 {
            opts.insert("value".into(), value);
        }
        if self.below(16) != 0 {
            opts.insert("separator".into(), sep);
        }
        if self.chance(0.3) {
            opts.insert("omitArrays".into(), json!(self.chance(0.5)));
        }
        json!({"@flatten": opts})
    }

    fn json_directive(&mut self) -> Value {
        let mode = pick(
            &mut self.rng,
            &["encode", "decode", "encode", "decode", "other"],
        );
        let value = match (mode, self.below(4)) {
            ("decode", 0) => json!("{\"a\":[1,2,{\"b\":null}]}"),
            ("decode", 1) => json!("not json"),
            ("decode", 2) => json!("12"),
            _ => json!({"@path": self.path()}),
        };
        json!({"@json": {"value": value, "mode": mode}})
    }

    fn merge(&mut self, depth: usize) -> Value {
        let dir = pick(&mut self.rng, &["left", "right", "right", "up"]);
        let n = self.below(3) + 1;
        let objects: Vec<Value> = (0..n)
            .map(|_| match self.below(4) {
                0 => json!({"@path": "$.traits"}),
                1 => json!({"@path": "$.properties"}),
                2 => json!({"name": self.mapping(depth + 1), "plan": "pro"}),
                _ => json!({"@path": self.path()}),
            })
            .collect();
        json!({"@merge": {"objects": objects, "direction": dir}})
    }

    fn transform(&mut self, depth: usize) -> Value {
        json!({"@transform": {
            "apply": {"first": {"@path": self.path()}, "second": {"@path": "$.properties"}},
            "mapping": {"out": {"@path": pick(&mut self.rng, &["$.first", "$.second.name", "$.second", "$.nothing"])},
                        "more": self.mapping(depth + 1)}
        }})
    }

    /// Mappings Segment's validation refuses, each naming a different rule.
    fn invalid(&mut self) -> Value {
        match self.below(14) {
            0 => json!({"@path": 3}),
            1 => json!({"@unknown": 1}),
            2 => json!({"@path": "$.a", "@template": "x"}),
            3 => json!({"@template": ["x"]}),
            4 => json!({"@if": {"exists": {"@path": "$.a"}}}),
            5 => json!({"@case": {"operator": 1, "value": "x"}}),
            6 => json!({"@replace": {"pattern": "a"}}),
            7 => json!({"@arrayPath": [1]}),
            8 => json!({"@json": {"mode": "encode"}}),
            9 => json!({"@merge": {"objects": "x", "direction": "left"}}),
            10 => json!({"@liquid": 5}),
            11 => json!({"@liquid": "x".repeat(1001)}),
            12 => json!({"@transform": {"mapping": {}}}),
            _ => json!({"a": {"@flatten": "x"}}),
        }
    }

    /// A liquid template built from the grammar liquidjs accepts, with filters from its whole
    /// list (Segment's disabled ones and unknown names included), tags, and malformed pieces.
    fn liquid(&mut self) -> String {
        let mut out = String::new();
        let parts = self.below(3) + 1;
        for _ in 0..parts {
            match self.below(30) {
                0..=11 => {
                    let expr = self.liquid_expr();
                    let filters = self.liquid_filters();
                    let (open, close) = self.liquid_delims();
                    let _ = write!(out, "{open} {expr}{filters} {close}");
                }
                12 => {
                    let expr = self.liquid_expr();
                    let filters = self.liquid_filters();
                    let _ = write!(out, "{{% assign v = {expr}{filters} %}}{{{{ v }}}}");
                }
                13 => {
                    let inner = self.liquid_output();
                    let _ = write!(
                        out,
                        "{{% capture c %}}{inner}!{{% endcapture %}}[{{{{ c }}}}]"
                    );
                }
                14..=16 => {
                    let cond = self.liquid_cond();
                    let a = self.liquid_output();
                    let _ = write!(out, "{{% if {cond} %}}{a}{{% ");
                    if self.chance(0.4) {
                        let cond2 = self.liquid_cond();
                        let _ = write!(out, "elsif {cond2} %}}B{{% ");
                    }
                    out.push_str("else %}C{% endif %}");
                }
                17 => {
                    let cond = self.liquid_cond();
                    let _ = write!(out, "{{% unless {cond} %}}U{{% endunless %}}");
                }
                18 => out.push_str("{% raw %}{{ properties.name }}{% endraw %}"),
                19 => out.push_str(pick(
                    &mut self.rng,
                    &[
                        "{% comment %}hidden {{ x }}{% endcomment %}",
                        "{% # inline comment %}",
                        "{% increment n %}{% increment n %}{{ n }}",
                        "{% decrement d %}{% decrement d %}",
                        "{% cycle \"a\", \"b\" %}{% cycle \"a\", \"b\" %}",
                        "{% echo properties.name | upcase %}",
                        "{% liquid\n assign x = properties.count | plus: 1\n echo x\n%}",
                        "{% break %}",
                    ],
                )),
                20 => out.push_str(pick(
                    &mut self.rng,
                    &[
                        "{% for x in properties.items %}{{ x.id }}{% endfor %}",
                        "{% case type %}{% when \"track\" %}T{% endcase %}",
                        "{% include \"other\" %}",
                        "{% render \"other\" %}",
                        "{% tablerow x in properties.items %}{{ x }}{% endtablerow %}",
                        "{% layout \"x\" %}",
                        "{% foo %}",
                    ],
                )),
                21 => out.push_str(pick(
                    &mut self.rng,
                    &[
                        "{{ properties.name ",
                        "{% if properties.flag %}open",
                        "{{ properties.name | }}",
                        "{% assign %}",
                        "{{ properties.count | plus: }}",
                        "{% endif %}",
                        "{{ 'unterminated }}",
                        "{%- if true -%} x {%- endif -%}",
                        "\n{{ properties.name | nosuch }}\n{% for %}",
                    ],
                )),
                22..=24 => {
                    let fmt = self.date_format();
                    let input = pick(
                        &mut self.rng,
                        &[
                            "timestamp",
                            "properties.date",
                            "traits.createdAt",
                            "properties.count",
                            "properties.name",
                            "'2024-03-07'",
                            "'2024-03-07T23:59:59Z'",
                            "'2024-03-07T10:11:12.345+02:00'",
                            "'March 7, 2024'",
                            "1700000000",
                            "'1700000000'",
                            "'not a date'",
                        ],
                    );
                    let _ = write!(out, "{{{{ {input} | date: \"{fmt}\" }}}}");
                }
                _ => out.push_str(pick(&mut self.rng, &["Hi ", " ", "Zoë ", "x", "—", "\n"])),
            }
        }
        out
    }

    fn liquid_delims(&mut self) -> (&'static str, &'static str) {
        match self.below(10) {
            0 => ("{{-", "-}}"),
            1 => ("{{-", "}}"),
            _ => ("{{", "}}"),
        }
    }

    fn liquid_output(&mut self) -> String {
        let expr = self.liquid_expr();
        let filters = self.liquid_filters();
        format!("{{{{ {expr}{filters} }}}}")
    }

    fn liquid_expr(&mut self) -> String {
        let key = pick(&mut self.rng, KEYS);
        let key = if key.contains(' ') || !key.is_ascii() {
            format!("[\"{key}\"]")
        } else {
            format!(".{key}")
        };
        let top = pick(&mut self.rng, &["properties", "traits", "properties"]);
        match self.below(22) {
            0 => "event".to_owned(),
            1 => "userId".to_owned(),
            2 => format!("{top}{key}.size"),
            3 => format!("{top}.items.first.id"),
            4 => format!("{top}.items[1].price"),
            5 => format!("{top}.items.last"),
            6 => format!("{top}{key}.first"),
            7 => format!(
                "\"{}\"",
                self.string().replace(['"', '\n', '{', '}', '%'], "")
            ),
            8 => format!("{}", self.number()),
            9 => pick(
                &mut self.rng,
                &[
                    "nil", "true", "false", "empty", "blank", "(1..3)", "missing",
                ],
            )
            .to_owned(),
            10 => "properties".to_owned(),
            11 => "properties.nested.list".to_owned(),
            12 => "context.page.title".to_owned(),
            13 => "type".to_owned(),
            _ => format!("{top}{key}"),
        }
    }

    fn liquid_cond(&mut self) -> String {
        let a = self.liquid_expr();
        let op = pick(
            &mut self.rng,
            &["==", "!=", ">", "<", ">=", "<=", "contains", "", "", "=="],
        );
        let mut cond = if op.is_empty() {
            a
        } else {
            let b = match self.below(5) {
                0 => "empty".to_owned(),
                1 => "blank".to_owned(),
                2 => "nil".to_owned(),
                _ => self.liquid_expr(),
            };
            format!("{a} {op} {b}")
        };
        if self.chance(0.25) {
            let joiner = pick(&mut self.rng, &["and", "or"]);
            let more = self.liquid_expr();
            let _ = write!(cond, " {joiner} {more}");
        }
        cond
    }

    fn liquid_filters(&mut self) -> String {
        let mut out = String::new();
        let n = match self.below(10) {
            0..=2 => 0,
            3..=7 => 1,
            8 => 2,
            _ => 3,
        };
        for _ in 0..n {
            let f = self.liquid_filter();
            let _ = write!(out, " | {f}");
        }
        out
    }

    fn liquid_arg(&mut self) -> String {
        match self.below(8) {
            0 => format!(
                "\"{}\"",
                pick(&mut self.rng, &[",", " ", "a", "-", "", "Zoë", "o"])
            ),
            1 => "properties.name".to_owned(),
            2 => "properties.count".to_owned(),
            3 => "nil".to_owned(),
            4 => "2.5".to_owned(),
            5 => "-3".to_owned(),
            6 => "'x'".to_owned(),
            _ => format!("{}", self.below(12)),
        }
    }

    fn liquid_filter(&mut self) -> String {
        const NO_ARG: &[&str] = &[
            "abs",
            "capitalize",
            "ceil",
            "compact",
            "downcase",
            "escape",
            "escape_once",
            "first",
            "floor",
            "json",
            "jsonify",
            "last",
            "lstrip",
            "rstrip",
            "size",
            "strip",
            "strip_html",
            "strip_newlines",
            "upcase",
            "url_decode",
            "url_encode",
            "cgi_escape",
            "uri_escape",
            "xml_escape",
            "slugify",
            "number_of_words",
            "pop",
            "shift",
            "sum",
            "base64_encode",
            "base64_decode",
            "to_integer",
            "inspect",
            "raw",
            "date_to_xmlschema",
            "date_to_rfc822",
            "date_to_string",
            "date_to_long_string",
            "round",
            "unescape",
        ];
        // Filters Segment disables, and names that are no filter at all.
        const REFUSED: &[&str] = &[
            "sort",
            "reverse",
            "uniq",
            "newline_to_br",
            "type",
            "sort_natural",
            "nosuch",
            "titlecase",
        ];
        const ONE_ARG: &[&str] = &[
            "append",
            "prepend",
            "at_least",
            "at_most",
            "divided_by",
            "minus",
            "plus",
            "times",
            "modulo",
            "join",
            "split",
            "remove",
            "remove_first",
            "remove_last",
            "truncate",
            "truncatewords",
            "slice",
            "round",
            "default",
            "push",
            "unshift",
            "where",
            "first",
        ];
        const REFUSED_ONE_ARG: &[&str] = &["map", "concat", "has", "find", "group_by", "reject"];
        const TWO_ARGS: &[&str] = &[
            "replace",
            "replace_first",
            "replace_last",
            "slice",
            "truncate",
            "truncatewords",
            "where",
        ];
        match self.below(40) {
            0 => pick(&mut self.rng, REFUSED).to_owned(),
            1 => {
                let f = pick(&mut self.rng, REFUSED_ONE_ARG);
                let a = self.liquid_arg();
                format!("{f}: {a}")
            }
            2..=17 => pick(&mut self.rng, NO_ARG).to_owned(),
            18..=33 => {
                let f = pick(&mut self.rng, ONE_ARG);
                let a = self.liquid_arg();
                format!("{f}: {a}")
            }
            34..=37 => {
                let f = pick(&mut self.rng, TWO_ARGS);
                let a = self.liquid_arg();
                let b = self.liquid_arg();
                format!("{f}: {a}, {b}")
            }
            _ => {
                let a = self.liquid_arg();
                format!("default: {a}, allow_false: true")
            }
        }
    }

    fn date_format(&mut self) -> &'static str {
        pick(
            &mut self.rng,
            &[
                "%Y-%m-%d",
                "%B %-d, %Y",
                "%A, %B %d, %Y at %l:%M %P %z",
                "%d/%m/%y %H:%M:%S",
                "%a %b %e %I:%M %p",
                "%s",
                "%j %U %W %u %w",
                "%^B %-m/%-d",
                "%Y-%m-%dT%H:%M:%S.%L%:z",
                "%c",
                "%x %X",
                "%D %F %T %R",
                "%C %y %G %V",
                "%N %3N",
                "%q",
                "%%",
                "%k|%_H|%010Y|%-H",
                "%Z",
            ],
        )
    }

    fn mapping_case(&mut self, i: usize) -> Value {
        let mapping = if self.chance(0.75) {
            // Most cases sit under a key, as action fields do; some are at the root.
            let mut map = Map::new();
            map.insert("out".into(), self.mapping(0));
            if self.chance(0.3) {
                map.insert("second".into(), self.mapping(1));
            }
            Value::Object(map)
        } else {
            self.mapping(0)
        };
        let group = group_of(&mapping);
        json!({"id": format!("m{i:05}"), "group": group, "mapping": mapping, "payload": self.event()})
    }

    /// A number as FQL spells it (plain decimal).
    fn fql_number(&mut self) -> String {
        pick(
            &mut self.rng,
            &[
                "0",
                "1",
                "-1",
                "2",
                "7",
                "1.5",
                "0.1",
                "2.675",
                "-0.5",
                "100",
                "123456789",
                "10.0",
                "1700000000",
            ],
        )
        .to_owned()
    }

    fn fql_atom(&mut self) -> String {
        let key = pick(
            &mut self.rng,
            &[
                "name", "plan", "price", "count", "flag", "email", "zero", "nothing", "empty",
            ],
        );
        let top = pick(&mut self.rng, &["properties", "traits"]);
        let value = match self.below(8) {
            0 => "null".to_owned(),
            1 => "true".to_owned(),
            2 => "false".to_owned(),
            3 => self.fql_number(),
            _ => format!("\"{}\"", self.string().replace(['"', '\\', '\n', '\t'], "")),
        };
        match self.below(18) {
            0 => format!(
                "type = \"{}\"",
                pick(&mut self.rng, &["track", "identify", "group", "page"])
            ),
            1 => format!(
                "event = \"{}\"",
                pick(
                    &mut self.rng,
                    &["Order Completed", "Signed Up", "order completed"]
                )
            ),
            2 => format!(
                "contains(event, \"{}\")",
                pick(&mut self.rng, &["Order", "order", "", "Up"])
            ),
            3 => format!(
                "match(event, \"{}\")",
                pick(&mut self.rng, &["Order*", "*Up", "*", "Sign*"])
            ),
            4 => format!("{top}.{key} = {value}"),
            5 => format!("{top}.{key} != {value}"),
            6 => format!("{top}.{key} > {}", self.fql_number()),
            7 => format!("{top}.{key} >= {}", self.fql_number()),
            8 => format!("{top}.{key} < {}", self.fql_number()),
            9 => format!("{top}.{key} <= {}", self.fql_number()),
            10 => format!(
                "contains({top}.{key}, \"{}\")",
                pick(&mut self.rng, &["a", "e", "Zo", ""])
            ),
            11 => "userId != null".to_owned(),
            12 => format!("{top}.{key} = null"),
            13 => format!(
                "context.device.type = \"{}\"",
                pick(&mut self.rng, &["ios", "web"])
            ),
            14 => format!(
                "match({top}.{key}, \"{}\")",
                pick(&mut self.rng, &["h*", "*o", "a*"])
            ),
            15 => format!(
                "!contains(event, \"{}\")",
                pick(&mut self.rng, &["Order", "Up"])
            ),
            16 => format!(
                "!match({top}.{key}, \"{}\")",
                pick(&mut self.rng, &["h*", "*o"])
            ),
            _ => format!("{top}.{key} = {value}"),
        }
    }

    /// A trigger as Segment's editor writes one: conditions joined by one conjunction; in one of
    /// twenty triggers of several conditions, written by hand, one parenthesised group joined by
    /// the other conjunction. Returns the trigger and its group (`flat` or `grouped`).
    fn fql(&mut self) -> (String, &'static str) {
        let conj = pick(&mut self.rng, &["and", "or"]);
        let other = if conj == "and" { "or" } else { "and" };
        let n = match self.below(10) {
            0..=3 => 1,
            4..=6 => 2,
            7..=8 => 3,
            _ => 4,
        };
        let mut parts: Vec<String> = (0..n).map(|_| self.fql_atom()).collect();
        let mut group = "flat";
        if n > 1 && self.below(20) == 0 {
            let inner: Vec<String> = (0..2).map(|_| self.fql_atom()).collect();
            let at = self.below(parts.len());
            parts[at] = format!("({})", inner.join(&format!(" {other} ")));
            group = "grouped";
        }
        (parts.join(&format!(" {conj} ")), group)
    }

    fn trigger_case(&mut self, i: usize) -> Value {
        let (fql, group) = match self.below(1000) {
            // Refused by both parsers.
            0..=14 => (
                pick(
                    &mut self.rng,
                    &[
                        "",
                        "(type = \"track\"",
                        "and",
                        "foo = \"bar\"",
                        "= \"x\"",
                        "type = \"track\" and (event = \"a\"",
                    ],
                )
                .to_owned(),
                "malformed",
            ),
            // Accepted by Segment's scanner, which skips what it does not understand, and refused
            // here (deviation 3 of the fql crate).
            15 => (
                pick(
                    &mut self.rng,
                    &["type == \"track\"", "type = \"track\" and", "event = track"],
                )
                .to_owned(),
                "malformed",
            ),
            _ => self.fql(),
        };
        json!({"id": format!("t{i:05}"), "group": group, "fql": fql, "event": self.event()})
    }

    /// An event for Userpilot's presets, with the values its fields are strict about.
    fn userpilot_case(&mut self, i: usize) -> Value {
        let mut event = self.event();
        let kind = pick(
            &mut self.rng,
            &["identify", "identify", "track", "track", "group", "page"],
        );
        event["type"] = json!(kind);
        if kind == "track" && event.get("event").is_none() {
            event["event"] = json!("Signed Up");
        }
        let created = match self.below(12) {
            0 => Some(json!("2024-03-07T10:11:12Z")),
            1 => Some(json!("2024-03-07")),
            2 => Some(json!(["2024-03-07T10:11:12Z"])),
            3 => Some(json!("1e10")),
            4 => Some(json!(1_700_000_000)),
            5 => Some(json!("not a date")),
            6 => Some(json!("2024-03-07T10:11:12.345+02:00")),
            7 => Some(Value::Null),
            8 => Some(json!("")),
            _ => None,
        };
        if let Some(created) = created {
            event["traits"]["createdAt"] = created.clone();
            if self.chance(0.5) {
                event["properties"]["createdAt"] = created;
            }
        }
        if kind == "group" && self.chance(0.2) {
            if let Value::Object(map) = &mut event {
                map.remove("groupId");
            }
        }
        json!({"id": format!("u{i:05}"), "group": kind, "event": event})
    }
}

/// The directive a mapping case is filed under: the first directive met walking the mapping, or
/// `object` for a mapping without one.
fn group_of(mapping: &Value) -> String {
    fn walk(value: &Value) -> Option<String> {
        match value {
            Value::Object(map) => {
                if let Some(key) = map.keys().find(|k| k.starts_with('@')) {
                    return Some(key.clone());
                }
                map.values().find_map(walk)
            }
            Value::Array(items) => items.iter().find_map(walk),
            _ => None,
        }
    }
    walk(mapping).unwrap_or_else(|| "object".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        for i in 0..50 {
            assert_eq!(a.mapping_case(i), b.mapping_case(i));
            assert_eq!(a.trigger_case(i), b.trigger_case(i));
        }
        let mut c = Generator::new(8);
        let differs = (0..50).any(|i| a.mapping_case(i) != c.mapping_case(i));
        assert!(differs, "another seed must give other cases");
    }

    #[test]
    fn every_directive_is_covered() {
        let mut corpus = Generator::new(DEFAULT_SEED);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..MAPPING_CASES {
            let case = corpus.mapping_case(i);
            let text = case["mapping"].to_string();
            for directive in [
                "@path",
                "@template",
                "@literal",
                "@if",
                "@case",
                "@replace",
                "@arrayPath",
                "@flatten",
                "@json",
                "@merge",
                "@transform",
                "@excludeWhenNull",
                "@liquid",
            ] {
                if text.contains(&format!("\"{directive}\"")) {
                    seen.insert(directive);
                }
            }
        }
        assert_eq!(seen.len(), 13, "{seen:?}");
    }
}
