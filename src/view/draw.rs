//! Drawing a [`Timeline`]: SVG written here, once; the HTML page wraps the same SVG with its
//! header, filters and search (its script only hides rows and moves them up).

use std::fmt::Write as _;

use super::{Event, Timeline};

/// Height of one row, in pixels.
const ROW_PX: usize = 16;
/// Width of the time column.
const TIME_PX: usize = 96;
/// Width of one host's lane.
const LANE_PX: usize = 96;
/// Height of the lane names above the rows.
const HEAD_PX: usize = 28;
/// Width left for each row's text.
const TEXT_PX: usize = 760;

/// The whole picture as one SVG document (lane names on top): for the docs and for `--svg`.
pub fn svg(t: &Timeline) -> String {
    let height = HEAD_PX + rows_px(t);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" font-family="monospace" font-size="11">"#,
        w = width(t)
    );
    out.push_str(STYLE_SVG);
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    lane_names(t, &mut out);
    let _ = write!(out, r#"<g transform="translate(0,{HEAD_PX})">"#);
    rows(t, &mut out);
    out.push_str("</g></svg>\n");
    out
}

/// A self-contained HTML page: the header lines, the filters, the lanes' names kept in view
/// while scrolling, and the rows. `title` names what it shows.
pub fn page(t: &Timeline, title: &str) -> String {
    let mut header = String::new();
    for line in &t.header {
        let class = if line.starts_with("FAIL") { "fail" } else { "" };
        let _ = write!(header, r#"<div class="{class}">{}</div>"#, esc(line));
    }
    let mut lanes = String::new();
    for (i, name) in t.lanes.iter().enumerate() {
        let _ = write!(
            lanes,
            r#"<label><input type="checkbox" class="lane" value="{i}" checked> {}</label> "#,
            esc(name)
        );
    }
    let mut head = String::new();
    let _ = write!(
        head,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{HEAD_PX}" font-family="monospace" font-size="11">"#,
        w = width(t)
    );
    lane_names(t, &mut head);
    head.push_str("</svg>");
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="rows" width="{w}" height="{h}" font-family="monospace" font-size="11">"#,
        w = width(t),
        h = rows_px(t)
    );
    rows(t, &mut body);
    body.push_str("</svg>");
    PAGE.replace("{title}", &esc(title))
        .replace("{style}", STYLE_SVG)
        .replace("{header}", &header)
        .replace("{lanes}", &lanes)
        .replace("{summary}", &summary(t))
        .replace("{row_px}", &ROW_PX.to_string())
        .replace("{head}", &head)
        .replace("{body}", &body)
}

/// The counts the page states (and a browser test reads from its attributes).
fn summary(t: &Timeline) -> String {
    let mut s = format!(
        r#"<p id="summary" data-lanes="{}" data-events="{}" data-arrows="{}">{} hosts, {} calls and notes, {} deliveries drawn (bytes between TCP sockets; AF_UNIX and UDP bytes are not paired)"#,
        t.lanes.len(),
        t.events.len(),
        t.arrows.len(),
        t.lanes.len(),
        t.events.len(),
        t.arrows.len()
    );
    if t.elided > 0 {
        let _ = write!(s, "; {} events from the middle are not drawn", t.elided);
    }
    s.push_str(".</p>");
    s
}

fn width(t: &Timeline) -> usize {
    text_x(t) + TEXT_PX
}

fn text_x(t: &Timeline) -> usize {
    TIME_PX + t.lanes.len() * LANE_PX + 8
}

fn lane_x(lane: usize) -> usize {
    TIME_PX + lane * LANE_PX + LANE_PX / 2
}

/// Rows, the gap marker, and a margin.
fn rows_px(t: &Timeline) -> usize {
    (t.events.len() + usize::from(t.elided > 0) + 1) * ROW_PX
}

fn row_y(t: &Timeline, i: usize) -> usize {
    let gap = usize::from(t.elided > 0 && i >= t.elided_after);
    (i + gap) * ROW_PX + ROW_PX / 2
}

fn lane_names(t: &Timeline, out: &mut String) {
    let _ = write!(out, r#"<g class="heads">"#);
    for (i, name) in t.lanes.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text class="head lane-{i}" x="{}" y="18" text-anchor="middle">{}</text>"#,
            lane_x(i),
            esc(name)
        );
    }
    let _ = write!(
        out,
        r#"<text class="head" x="4" y="18">virtual s</text><text class="head" x="{}" y="18">call or note</text></g>"#,
        text_x(t)
    );
}

fn rows(t: &Timeline, out: &mut String) {
    let bottom = rows_px(t);
    for i in 0..t.lanes.len() {
        let x = lane_x(i);
        let _ = write!(
            out,
            r#"<line class="guide lane-{i}" data-lane="{i}" x1="{x}" x2="{x}" y1="0" y2="{bottom}"/>"#
        );
    }
    out.push_str(r#"<defs><marker id="head" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="tip"/></marker></defs>"#);
    for a in &t.arrows {
        let (from, to) = (&t.events[a.from], &t.events[a.to]);
        let _ = write!(
            out,
            r#"<line class="arrow" data-from="{}" data-to="{}" x1="{}" y1="{}" x2="{}" y2="{}" marker-end="url(#head)"><title>{} bytes</title></line>"#,
            a.from,
            a.to,
            lane_x(from.lane),
            row_y(t, a.from),
            lane_x(to.lane),
            row_y(t, a.to),
            a.bytes
        );
    }
    if t.elided > 0 {
        let _ = write!(
            out,
            r#"<text class="gap" data-after="{}" x="{}" y="{}">… {} events not drawn …</text>"#,
            t.elided_after,
            text_x(t),
            row_y(t, t.elided_after) - ROW_PX + 4,
            t.elided
        );
    }
    for (i, e) in t.events.iter().enumerate() {
        row(t, i, e, out);
    }
}

fn row(t: &Timeline, i: usize, e: &Event, out: &mut String) {
    let mut class = format!("ev k-{}", e.kind.name());
    for (on, name) in [
        (e.error, " err"),
        (e.choice.is_some(), " choice"),
        (e.failure, " failure"),
    ] {
        if on {
            class.push_str(name);
        }
    }
    let _ = write!(
        out,
        r#"<g class="{class}" data-i="{i}" data-lane="{}" data-kind="{}" transform="translate(0,{})">"#,
        e.lane,
        e.kind.name(),
        row_y(t, i)
    );
    if e.failure {
        let _ = write!(
            out,
            r#"<rect class="band" x="0" y="-{}" width="{}" height="{ROW_PX}"/>"#,
            ROW_PX / 2,
            width(t)
        );
    }
    let x = lane_x(e.lane);
    if e.choice.is_some() {
        let _ = write!(
            out,
            r#"<path class="mark" d="M{x},-5 L{},0 L{x},5 L{},0 z"/>"#,
            x + 5,
            x - 5
        );
    } else {
        let _ = write!(out, r#"<circle class="mark" cx="{x}" cy="0" r="3.5"/>"#);
    }
    let _ = write!(
        out,
        r#"<text class="t" x="4" y="4">{}.{:06}</text>"#,
        e.at_us / 1_000_000,
        e.at_us % 1_000_000
    );
    let mut text = String::new();
    if e.kind != super::Kind::Note {
        let _ = write!(text, "{}: ", t.lanes[e.lane]);
    }
    text.push_str(&e.text);
    if let Some(c) = &e.choice {
        let _ = write!(text, "  ⚑ {c}");
    }
    let _ = write!(
        out,
        r#"<text class="txt" x="{}" y="4">{}</text><title>{}</title></g>"#,
        text_x(t),
        esc(&text),
        esc(&text)
    );
}

/// Escapes text for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Colours, shared by the SVG document and the page.
const STYLE_SVG: &str = "<style>
.guide{stroke:#ddd;stroke-width:1}
.head{font-weight:bold;fill:#222}
.arrow{stroke:#4a7;stroke-width:1.2;opacity:.8}
.tip{fill:#4a7}
.mark{fill:#666}
.k-data .mark{fill:#27c}
.k-wait .mark{fill:#93c}
.k-connection .mark{fill:#333}
.k-note .mark{fill:#bbb}
.choice .mark{fill:#e80}
.choice .txt{fill:#b50}
.err .txt{fill:#c22}
.k-note .txt{fill:#777;font-style:italic}
.t{fill:#999}
.band{fill:#fdd}
.failure .txt{font-weight:bold;fill:#c00}
.gap{fill:#999;font-style:italic}
</style>";

const PAGE: &str = include_str!("page.html");
