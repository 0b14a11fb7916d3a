//! The destination docs page: `docs/destinations/<slug>.md`, rendered with Handlebars.
//!
//! The page is the hand-written prose of `actions/<dest>/docs.md`, arranged as Segment's page is
//! (see `split_prose`), with the generated sections that Segment's docs site renders for a
//! destination (its `actions-fields` include) between "Getting started" and "Troubleshooting":
//! `## Destination Settings` (Setting | Description; a required setting
//! starts with `*Required.*`), `## Available Presets` (Preset Name | Trigger | Default Action, the
//! trigger shown as ``Event `<fql>` ``), and `## Available Actions` (a link list, then per action a
//! `###` section with its description, platform and default trigger and a Field | Description table
//! whose required labels carry `*` and whose descriptions start with `Type: <TYPE>`).
//!
//! Those sections hold Segment's actions and presets only, so that the page up to the end of
//! "Troubleshooting" is Segment's page. Actions declared `beyond_segment` follow the whole
//! hand-written prose in `## Beyond Segment Actions`: a sentence saying what the section is, a
//! table of their presets (with a Default State column, `Off`), a link list, then one `###`
//! section per action whose heading ends in `(Beyond Segment)` and whose first paragraph says that
//! Segment's destination has no such action. Beyond-Segment actions also list their request
//! (method and path, busy statuses, response id); any action with a batch form lists it (request,
//! max items, max bytes, wait, batch keys, busy statuses, response id, and how the form is
//! chosen) in the same bullet style.
//!
//! The template is strict (a missing value is an error) and never HTML-escapes.

use anyhow::{Context, Result};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::Value;

use super::catalog::is_beyond_segment;
use super::model::{Action, Batch, Destination, Preset, Request, Required, Sign};

/// How many mappings one destination instance may hold (Segment's limit, stated on the page).
const MAPPING_LIMIT: u32 = 50;

pub use actionkit_spec::model::BATCH_SWITCH_FIELD;

/// The marker a beyond-Segment action's heading ends with.
pub const BEYOND_SEGMENT_MARKER: &str = "(Beyond Segment)";

/// The heading of the section that holds the beyond-Segment actions.
pub const BEYOND_SEGMENT_HEADING: &str = "## Beyond Segment Actions";

/// The heading of that section when actionkit adds presets only.
pub const BEYOND_SEGMENT_PRESETS_HEADING: &str = "## Beyond Segment Presets";

const TEMPLATE: &str = include_str!("../../templates/destination.md.hbs");

#[derive(Serialize)]
struct Page {
    header: String,
    title: String,
    prose_before: String,
    prose_after: String,
    has_prose_after: bool,
    display_name: String,
    short_name: String,
    mapping_limit: u32,
    has_settings: bool,
    settings: Vec<Row2>,
    has_presets: bool,
    presets: Vec<PresetRow>,
    actions: Vec<ActionSection>,
    beyond_heading: &'static str,
    has_beyond: bool,
    /// Whether there is a beyond-Segment section at all: actions, or presets alone.
    has_beyond_section: bool,
    has_beyond_presets: bool,
    beyond_presets: Vec<PresetRow>,
    beyond_actions: Vec<ActionSection>,
}

#[derive(Serialize)]
struct Row2 {
    label: String,
    description: String,
}

#[derive(Serialize)]
struct PresetRow {
    name: String,
    trigger: String,
    action: String,
    state: &'static str,
}

#[derive(Serialize)]
struct ActionSection {
    name: String,
    heading: String,
    anchor: String,
    /// The "Beyond Segment" paragraph; empty for Segment's actions.
    marker: String,
    description: String,
    platform: String,
    trigger: String,
    /// The request and batch form, each a bold title over a bullet list.
    blocks: Vec<Block>,
    fields: Vec<Row2>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Block {
    title: &'static str,
    items: Vec<String>,
}

/// The page's path relative to the repository root.
pub fn page_path(dest: &Destination) -> String {
    format!("docs/destinations/{}.md", dest.slug)
}

/// Renders the docs page of `dest`.
pub fn render_page(dest: &Destination) -> Result<String> {
    let (before, after) = split_prose(&dest.docs_prose);
    let short_name = dest.display_name.trim_end_matches(" (Actions)").to_owned();
    let (beyond_presets, presets): (Vec<&Preset>, Vec<&Preset>) = dest
        .presets
        .iter()
        .partition(|preset| is_beyond_segment(dest, preset));
    let (beyond_actions, actions): (Vec<&Action>, Vec<&Action>) = dest
        .actions
        .iter()
        .filter(|action| !action.hidden)
        .partition(|action| action.beyond_segment);
    let page = Page {
        header: crate::fs::markdown_header(&format!("actions/{}/docs.md", dest.dir_name)),
        title: format!("{} Destination", dest.display_name),
        prose_before: before.trim().to_owned(),
        has_prose_after: !after.trim().is_empty(),
        prose_after: after.trim().to_owned(),
        display_name: dest.display_name.clone(),
        mapping_limit: MAPPING_LIMIT,
        has_settings: !dest.settings.is_empty(),
        settings: dest
            .settings
            .iter()
            .map(|setting| Row2 {
                label: cell(&setting.label),
                description: if setting.required {
                    format!("*Required.* {}", cell(&setting.description))
                } else {
                    cell(&setting.description)
                },
            })
            .collect(),
        has_presets: !presets.is_empty(),
        presets: presets
            .iter()
            .map(|preset| preset_row(dest, preset))
            .collect(),
        actions: actions
            .iter()
            .map(|action| action_section(action, dest))
            .collect(),
        beyond_heading: if beyond_actions.is_empty() {
            BEYOND_SEGMENT_PRESETS_HEADING
        } else {
            BEYOND_SEGMENT_HEADING
        },
        has_beyond: !beyond_actions.is_empty(),
        has_beyond_section: !beyond_actions.is_empty() || !beyond_presets.is_empty(),
        has_beyond_presets: !beyond_presets.is_empty(),
        beyond_presets: beyond_presets
            .iter()
            .map(|preset| preset_row(dest, preset))
            .collect(),
        beyond_actions: beyond_actions
            .iter()
            .map(|action| action_section(action, dest))
            .collect(),
        short_name,
    };
    let mut hbs = Handlebars::new();
    hbs.set_strict_mode(true);
    hbs.register_escape_fn(handlebars::no_escape);
    hbs.register_template_string("page", TEMPLATE)
        .context("invalid docs template")?;
    let text = hbs
        .render("page", &page)
        .context("cannot render the docs page")?;
    Ok(tidy(&text))
}

fn preset_row(dest: &Destination, preset: &Preset) -> PresetRow {
    PresetRow {
        name: cell(&preset.name),
        trigger: format!("Event {}", code_span(&preset.trigger)),
        action: cell(
            dest.actions
                .iter()
                .find(|action| action.key == preset.action_key)
                .map_or(preset.action_key.as_str(), |action| action.name.as_str()),
        ),
        state: if preset.enabled { "On" } else { "Off" },
    }
}

fn action_section(action: &Action, dest: &Destination) -> ActionSection {
    let display_name = dest.display_name.as_str();
    let signs = dest.request_defaults.sign.as_ref();
    let (heading, marker) = if action.beyond_segment {
        (
            format!("{} {BEYOND_SEGMENT_MARKER}", action.name),
            format!(
                "**Beyond Segment.** Segment's {display_name} destination has no such action; \
                 actionkit adds it, and its presets are off by default."
            ),
        )
    } else {
        (action.name.clone(), String::new())
    };
    let mut blocks = Vec::new();
    if action.beyond_segment
        && let Some(request) = &action.request
    {
        blocks.push(Block {
            title: "Request",
            items: request_items(request, "one per event", signs),
        });
    }
    if let Some(batch) = &action.batch {
        blocks.push(Block {
            title: "Batch request",
            items: batch_items(batch, action.request.is_some(), signs),
        });
    }
    if action.beyond_segment
        && let Some(merges) = &action.merges_by_id
    {
        let merged: Vec<String> = merges.merged.iter().map(|key| code_span(key)).collect();
        blocks.push(Block {
            title: "Sends only what changed",
            items: vec![
                format!(
                    "Record: {} by {}; keys merged one by one: {}",
                    code_span(&merges.record),
                    code_span(&merges.id),
                    if merged.is_empty() { "none".to_owned() } else { merged.join(", ") }
                ),
                "A request that changes nothing delivered before for its record is not sent, and requests for one record waiting together go as one (`send_only_changes: false` sends each)".to_owned(),
            ],
        });
    }
    ActionSection {
        name: action.name.clone(),
        anchor: anchor(&heading),
        heading,
        marker,
        description: action.description.trim().to_owned(),
        platform: capitalise(&action.platform),
        trigger: action.default_trigger.clone().unwrap_or_default(),
        blocks,
        fields: action
            .fields
            .iter()
            .filter(|field| !field.hidden)
            .map(|field| Row2 {
                label: if field.required == Required::No {
                    cell(&field.label)
                } else {
                    format!("{}*", cell(&field.label))
                },
                description: format!(
                    "Type: {}<br><br>{}",
                    field.kind.catalog_name(),
                    cell(&field.description)
                ),
            })
            .collect(),
    }
}

/// The bullet items of a request: method and path (with how often it is sent), then its
/// headers, its signature (its own, else `defaults_sign`, the one `request_defaults` gives
/// every request), the busy statuses and the response id when it has them.
fn request_items(request: &Request, how_often: &str, defaults_sign: Option<&Sign>) -> Vec<String> {
    let method = match &request.method_mapping {
        Some(mapping) => format!("the method from {}", code_span(&mapping.to_string())),
        None => request.method.clone(),
    };
    let mut items = vec![match (&request.url, &request.method_mapping) {
        (None, None) => format!(
            "Method and path: {}, {how_often}",
            code_span(&format!("{} {}", request.method, request.path))
        ),
        (None, Some(_)) => format!(
            "Method and path: {method}, path {}, {how_often}",
            code_span(&request.path)
        ),
        (Some(Value::String(url)), None) => format!(
            "Method and URL: {}, {how_often}",
            code_span(&format!("{} {url}", request.method))
        ),
        (Some(url), _) => format!(
            "Method and URL: {}, the URL from {}, {how_often}",
            if request.method_mapping.is_some() {
                method.clone()
            } else {
                code_span(&request.method)
            },
            code_span(&url.to_string())
        ),
    }];
    if !request.headers.is_empty() {
        let names: Vec<String> = request.headers.iter().map(|(n, _)| code_span(n)).collect();
        items.push(format!("Headers of its own: {}", names.join(", ")));
    }
    if let Some(mapping) = &request.headers_from {
        items.push(format!(
            "Headers named by data: every entry of the object {} resolves to (names in lower case, printable ASCII values)",
            code_span(&mapping.to_string())
        ));
    }
    match (&request.sign, defaults_sign) {
        (Some(sign), _) => items.push(sign_item(sign, "")),
        (None, Some(sign)) => items.push(sign_item(
            sign,
            " (every request's, from `request_defaults`)",
        )),
        (None, None) => {}
    }
    if !request.busy_statuses.is_empty() {
        let statuses: Vec<String> = request.busy_statuses.iter().map(u16::to_string).collect();
        items.push(format!(
            "Busy statuses: {} (the request is sent again after a pause, without spending the retry budget)",
            statuses.join(", ")
        ));
    }
    if let Some(key) = &request.response_id {
        items.push(format!(
            "Response id: {} (the answer's value under this key is logged with the delivery)",
            code_span(key)
        ));
    }
    items
}

/// The bullet items of a batch form, in the style of [`request_items`].
fn batch_items(batch: &Batch, has_single_form: bool, defaults_sign: Option<&Sign>) -> Vec<String> {
    let mut items = vec![if has_single_form {
        format!(
            "Used for: events whose {} field is true; the others are sent one by one",
            code_span(BATCH_SWITCH_FIELD)
        )
    } else {
        "Used for: every event".to_owned()
    }];
    let mut request = request_items(&batch.request, "one per batch", defaults_sign);
    let method_and_path = request.remove(0);
    items.push(method_and_path);
    items.push(format!("Max items: {} events per request", batch.max_items));
    items.push(match batch.max_bytes {
        Some(n) => format!("Max bytes: {n} bytes per request body"),
        None => "Max bytes: no limit".to_owned(),
    });
    items.push(format!(
        "Wait: {} ms after its first event before a batch that is not full is sent",
        batch.wait_ms
    ));
    items.push(if batch.keys.is_empty() {
        "Batch keys: none".to_owned()
    } else {
        let keys: Vec<String> = batch.keys.iter().map(|key| code_span(key)).collect();
        format!(
            "Batch keys: {} (events share a batch only when these fields agree)",
            keys.join(", ")
        )
    });
    items.extend(request);
    if let Some((list, index, message)) = &batch.item_errors {
        let message = message.as_deref().map_or_else(String::new, |m| {
            format!(" and reasons under {}", code_span(m))
        });
        items.push(format!(
            "Refused entries: a successful answer lists them under {} with their position under {}{message}; those fail, the others are delivered",
            code_span(list),
            code_span(index)
        ));
    }
    items
}

/// Arranges the prose of `docs.md` around the generated sections, as Segment's page is laid out.
///
/// A leading HTML comment (notes for whoever edits `docs.md`) is dropped. The text before the first
/// `## ` heading opens the page; then come `## Getting started` and `## Overview`, the latter
/// nested as `### Overview` (with its own sub-headings one level deeper) as on Segment's page; the
/// generated sections follow; then `## Troubleshooting`, then every other section in the order
/// written. Returns the prose before and after the generated sections.
fn split_prose(prose: &str) -> (String, String) {
    let mut text = prose.trim_start();
    if text.starts_with("<!--") {
        if let Some(end) = text.find("-->") {
            text = &text[end + "-->".len()..];
        }
    }
    let mut preamble = String::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with("## ") {
            sections.push((line["## ".len()..].trim().to_owned(), String::new()));
            continue;
        }
        let target = match sections.last_mut() {
            Some((_, body)) => body,
            None => &mut preamble,
        };
        target.push_str(line);
        target.push('\n');
    }
    let take = |sections: &mut Vec<(String, String)>, title: &str| {
        let idx = sections
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case(title))?;
        Some(sections.remove(idx))
    };
    let mut before = preamble.trim().to_owned();
    let push = |out: &mut String, heading: String, body: &str| {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&heading);
        out.push_str("\n\n");
        out.push_str(body.trim());
    };
    if let Some((name, body)) = take(&mut sections, "Getting started") {
        push(&mut before, format!("## {name}"), &body);
    }
    if let Some((name, body)) = take(&mut sections, "Overview") {
        let demoted: Vec<String> = body
            .lines()
            .map(|line| {
                if line.starts_with('#') {
                    format!("#{line}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        push(&mut before, format!("### {name}"), &demoted.join("\n"));
    }
    let mut after = String::new();
    if let Some((name, body)) = take(&mut sections, "Troubleshooting") {
        push(&mut after, format!("## {name}"), &body);
    }
    for (name, body) in sections {
        push(&mut after, format!("## {name}"), &body);
    }
    (before, after)
}

/// Makes text safe inside a Markdown table cell: no line breaks, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The bullet item of a signature: what is computed and where it goes; `source` says where it
/// is declared when that is not the request itself.
fn sign_item(sign: &Sign, source: &str) -> String {
    let prefix = if sign.prefix.is_empty() {
        String::new()
    } else {
        format!(" after {}", code_span(&sign.prefix))
    };
    format!(
        "Signature{source}: {} of the body bytes with the key {}, {}{prefix} in the header {} (no header when the key is empty)",
        sign.algorithm_name.to_uppercase(),
        code_span(&sign.secret.to_string()),
        sign.encoding,
        code_span(&sign.header)
    )
}

/// A Markdown code span holding `text`, with enough backticks to hold backticks inside.
fn code_span(text: &str) -> String {
    let text = cell(text);
    let fence = if text.contains('`') { "``" } else { "`" };
    let pad = if text.contains('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// The heading anchor GitHub-flavoured Markdown gives `heading`.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Collapses runs of blank lines left by template blocks and ends the page with one newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut n_blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            n_blank += 1;
            if n_blank > 1 {
                continue;
            }
        } else {
            n_blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    let trimmed = out.trim_end();
    format!("{trimmed}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_sections_are_arranged_like_segments_page() {
        let prose = "<!-- notes -->\nintro\n\n## Overview\nabout\n### Detail\nd\n\n## Extra\ne\n\n\
                     ## Troubleshooting\nt\n\n## Getting started\n1. go\n```\n## not a heading\n```\n";
        let (before, after) = split_prose(prose);
        assert_eq!(
            before,
            "intro\n\n## Getting started\n\n1. go\n```\n## not a heading\n```\n\n### Overview\n\nabout\n#### Detail\nd"
        );
        assert_eq!(after, "## Troubleshooting\n\nt\n\n## Extra\n\ne");
        let (before, after) = split_prose("intro only");
        assert_eq!((before.as_str(), after.as_str()), ("intro only", ""));
    }

    #[test]
    fn batch_forms_list_every_setting_in_the_request_style() {
        let request = Request {
            method: "POST".to_owned(),
            path: "v1/users/bulk".to_owned(),
            rate_limit: None,
            hook: None,
            json: None,
            busy_statuses: vec![409, 423],
            response_id: Some("job_id".to_owned()),
            method_mapping: None,
            url: None,
            headers: Vec::new(),
            headers_from: None,
            sign: None,
        };
        let batch = Batch {
            max_items: 10,
            max_bytes: None,
            wait_ms: 250,
            keys: vec!["companyId".to_owned(), "region".to_owned()],
            hook: None,
            item: None,
            request: request.clone(),
            item_errors: None,
        };
        let busy = "Busy statuses: 409, 423 (the request is sent again after a pause, \
                    without spending the retry budget)";
        let response_id =
            "Response id: `job_id` (the answer's value under this key is logged with the delivery)";
        assert_eq!(
            batch_items(&batch, false, None),
            [
                "Used for: every event",
                "Method and path: `POST v1/users/bulk`, one per batch",
                "Max items: 10 events per request",
                "Max bytes: no limit",
                "Wait: 250 ms after its first event before a batch that is not full is sent",
                "Batch keys: `companyId`, `region` (events share a batch only when these fields agree)",
                busy,
                response_id,
            ]
        );
        assert_eq!(
            batch_items(&batch, true, None)[0],
            "Used for: events whose `enable_batching` field is true; the others are sent one by one"
        );
        assert_eq!(
            request_items(&request, "one per event", None),
            [
                "Method and path: `POST v1/users/bulk`, one per event",
                busy,
                response_id,
            ]
        );
    }

    #[test]
    fn cells_and_anchors_are_markdown_safe() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(anchor("Identify User"), "identify-user");
        assert_eq!(anchor("Track (Beta) Event!"), "track-beta-event");
        assert_eq!(code_span("type = \"track\""), "`type = \"track\"`");
        assert_eq!(code_span("a`b"), "`` a`b ``");
    }
}
