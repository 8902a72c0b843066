//! The node's read-only HTTP pages: `/` (the status page: health, keys, ledger totals with
//! the conservation check, jobs), `/jobs/<job id>/receipt` (the receipt's protobuf bytes),
//! `/health` and `/metrics`.
//!
//! Server-rendered HTML with no script and no build step. Every value is HTML-escaped when it
//! is written, whether or not it could have come from a client (a reason string, a spec
//! field); the HTTP server also sends a `Content-Security-Policy` that allows no script, so a
//! missed escape could still not run one.

use std::fmt::Write as _;
use std::sync::Arc;

use matproof_protocol::ids::JobId;
use matproof_protocol::wire;
use matproof_telemetry::http::{Handler, HttpRequest, HttpResponse};
use matproof_telemetry::metrics::TEXT_CONTENT_TYPE;

use super::metrics::Snapshot;
use super::store::JobRow;
use super::{Node, now_unix_ms};

/// Jobs on one page of the status page.
pub(crate) const JOBS_PER_PAGE: u32 = 50;
/// Providers on the status page (the rest: `matproof provider list`).
pub(crate) const PROVIDERS_SHOWN: usize = 10;
/// The highest page number served (deeper history is for SQL, not for a page).
pub(crate) const MAX_PAGE: u64 = 10_000;

const HTML: &str = "text/html; charset=utf-8";

/// The handler for [`super::RunningNode::serve_http`]: `/metrics` always, the rest with
/// `status_page`.
pub(crate) fn handler(node: Arc<Node>, status_page: bool) -> Handler {
    Arc::new(move |request: HttpRequest| {
        let node = node.clone();
        Box::pin(async move { route(&node, &request, status_page).await })
    })
}

async fn route(node: &Node, request: &HttpRequest, status_page: bool) -> HttpResponse {
    let path = request.path.as_str();
    if path == "/metrics" {
        return HttpResponse::ok(TEXT_CONTENT_TYPE, node.metrics_text().await);
    }
    if !status_page {
        return HttpResponse::error(404, "this address serves /metrics only");
    }
    match path {
        "/" => match page_number(request.query.as_deref()) {
            Some(page) => status(node, page).await,
            None => HttpResponse::error(400, "page must be a number in 0..=10000"),
        },
        "/health" => match node.snapshot().await {
            Ok(_) => HttpResponse::ok("text/plain; charset=utf-8", "ok\n"),
            Err(_) => HttpResponse::error(503, "database unavailable\n"),
        },
        _ => match path.strip_prefix("/jobs/").and_then(|rest| rest.strip_suffix("/receipt")) {
            Some(job_hex) => receipt(node, job_hex).await,
            None => HttpResponse::error(404, "no such page"),
        },
    }
}

/// `page=N` of the query (0 without one); `None` for anything else.
fn page_number(query: Option<&str>) -> Option<u64> {
    let Some(query) = query.filter(|q| !q.is_empty()) else { return Some(0) };
    let value = query.strip_prefix("page=")?;
    let page: u64 = value.parse().ok()?;
    (page <= MAX_PAGE).then_some(page)
}

async fn receipt(node: &Node, job_hex: &str) -> HttpResponse {
    let mut id = [0u8; 32];
    if job_hex.len() != 64 || hex::decode_to_slice(job_hex, &mut id).is_err() {
        return HttpResponse::error(400, "a job id is 64 hex digits");
    }
    match node.store.load(&JobId(id)).await {
        Ok(Some(JobRow { receipt: Some(bytes), .. })) => HttpResponse {
            status: 200,
            content_type: "application/octet-stream",
            body: bytes,
            attachment: Some(format!("{}.receipt", hex::encode(id))),
        },
        Ok(_) => HttpResponse::error(404, "no receipt for this job (unknown, or no verdict yet)"),
        Err(e) => {
            tracing::warn!("status page: loading a receipt failed: {e}");
            HttpResponse::error(503, "database unavailable")
        }
    }
}

/// `s` with `& < > " '` escaped: safe in element content and in quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// One job as the page shows it.
struct JobLine {
    job_id: String,
    state: &'static str,
    escrow: String,
    price: u64,
    deadline: String,
    verdict: String,
    reason: String,
    fraud: bool,
    has_receipt: bool,
}

async fn job_line(node: &Node, row: &JobRow) -> JobLine {
    let escrow = match node.ledger.transfer(&row.job_id).await {
        Ok(t) => t.state.as_str().to_string(),
        Err(_) => "none".to_string(),
    };
    let decoded = row.receipt.as_deref().map(wire::decode_receipt);
    let (verdict, reason) = match decoded.as_ref().map(|r| r.as_ref().map(|r| r.verdicts.first())) {
        Some(Ok(Some(v))) => (v.verdict.as_str().to_string(), v.reason.clone()),
        Some(_) => ("unreadable".to_string(), "the stored receipt does not decode".to_string()),
        None => ("—".to_string(), String::new()),
    };
    JobLine {
        job_id: row.job_id.to_string(),
        state: row.state.as_str(),
        escrow,
        price: row.spec.price,
        deadline: utc(row.spec.policy.deadline_unix_ms),
        verdict,
        reason,
        fraud: row.fraud,
        has_receipt: row.receipt.is_some(),
    }
}

async fn status(node: &Node, page: u64) -> HttpResponse {
    let snapshot = node.snapshot().await;
    let rows = node.store.recent(JOBS_PER_PAGE, page * u64::from(JOBS_PER_PAGE)).await;
    let mut html = String::with_capacity(16 * 1024);
    html.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>matproof verifier node</title>\n<style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
         code{font-size:.85em}.bad{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}\
         </style></head><body>\n<h1>matproof verifier node</h1>\n",
    );
    write_health_and_keys(node, snapshot.as_ref().ok(), &mut html);
    match &snapshot {
        Ok(snapshot) => write_ledger(snapshot, &mut html),
        Err(e) => {
            let _ = writeln!(html, "<p class=\"bad\">database unavailable: {}</p>", escape(&e.to_string()));
        }
    }
    write_providers(node, &mut html).await;
    match rows {
        Ok(rows) => {
            let mut lines = Vec::with_capacity(rows.len());
            for row in &rows {
                lines.push(job_line(node, row).await);
            }
            write_jobs(&lines, page, &mut html);
        }
        Err(e) => {
            let _ = writeln!(html, "<p class=\"bad\">jobs unavailable: {}</p>", escape(&e.to_string()));
        }
    }
    let _ =
        writeln!(html, "<p><small>rendered at {} · <a href=\"/metrics\">metrics</a></small></p>", utc(now_unix_ms()));
    html.push_str("</body></html>\n");
    HttpResponse::ok(HTML, html)
}

fn write_health_and_keys(node: &Node, snapshot: Option<&Snapshot>, html: &mut String) {
    let (class, health) = match snapshot {
        Some(_) => ("ok", "serving"),
        None => ("bad", "database unavailable"),
    };
    let _ = writeln!(html, "<h2>Health</h2>\n<p id=\"health\" class=\"{class}\">{health}</p>");
    let _ = writeln!(
        html,
        "<h2>Keys</h2>\n<table><tr><th>verifier public key</th><td><code id=\"verifier-key\">{}</code></td></tr>\
         <tr><th>transport</th><td>{}</td></tr>",
        escape(&hex::encode(node.identity.public_key().0)),
        escape(&node.transport.to_string()),
    );
    let mut keys: Vec<_> = node.keys.iter().collect();
    keys.sort_by_key(|(hash, _)| hash.0);
    if keys.is_empty() {
        html.push_str("<tr><th>verifying keys</th><td>none (jobs without tile proofs only)</td></tr>");
    }
    for (hash, key) in keys {
        let shape = key.key().shape;
        let _ = write!(
            html,
            "<tr><th>verifying key {}×{} kc {}</th><td><code>{}</code></td></tr>",
            shape.tm,
            shape.tn,
            shape.kc,
            escape(&hex::encode(hash.0)),
        );
    }
    html.push_str("</table>\n");
}

fn write_ledger(snapshot: &Snapshot, html: &mut String) {
    let t = &snapshot.ledger;
    let conservation = match snapshot.conserved {
        true => "<span class=\"ok\">ok</span>",
        false => "<span class=\"bad\">VIOLATED</span>",
    };
    let _ = writeln!(
        html,
        "<h2>Ledger</h2>\n<table id=\"ledger\">\
         <tr><th>minted</th><td id=\"ledger-minted\">{}</td></tr>\
         <tr><th>in escrow</th><td id=\"ledger-escrow\">{}</td></tr>\
         <tr><th>paid to providers (posted)</th><td id=\"ledger-posted\">{}</td></tr>\
         <tr><th>refunded (voided)</th><td id=\"ledger-voided\">{}</td></tr>\
         <tr><th>slashed</th><td id=\"ledger-slashed\">{}</td></tr>\
         <tr><th>conservation check</th><td id=\"ledger-conservation\">{conservation}</td></tr></table>",
        t.minted, t.escrow_balance, t.posted, t.voided, t.slashed,
    );
    let counts: Vec<String> = snapshot.jobs_by_state.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
    let _ = writeln!(html, "<p id=\"job-counts\">jobs: {}</p>", escape(&counts.join(", ")));
}

/// The best [`PROVIDERS_SHOWN`] providers by score, with the inputs of the score beside it.
async fn write_providers(node: &Node, html: &mut String) {
    let ranked = match node.store.ranked_providers().await {
        Ok(ranked) => ranked,
        Err(e) => {
            let _ = writeln!(html, "<p class=\"bad\">providers unavailable: {}</p>", escape(&e.to_string()));
            return;
        }
    };
    let _ = writeln!(html, "<h2>Providers (best {PROVIDERS_SHOWN} of {} by score)</h2>", ranked.len());
    if ranked.is_empty() {
        html.push_str("<p>no provider yet</p>\n");
        return;
    }
    html.push_str(
        "<table id=\"providers\"><tr><th>provider</th><th>score</th><th>jobs</th><th>approved</th>\
         <th>rejected (fraud)</th><th>rejected (other)</th><th>expired</th><th>earned</th><th>slashed</th></tr>\n",
    );
    for (key, _) in ranked.iter().take(PROVIDERS_SHOWN) {
        let Ok(Some(r)) = node.store.provider_record(key).await else { continue };
        let c = &r.counts;
        let _ = writeln!(
            html,
            "<tr class=\"provider\"><td><code>{}</code></td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&key.to_hex()),
            r.score,
            c.opened,
            c.approved,
            c.rejected_fraud,
            c.rejected_other,
            c.expired,
            r.earned,
            r.slashed,
        );
    }
    html.push_str("</table>\n");
}

fn write_jobs(lines: &[JobLine], page: u64, html: &mut String) {
    let _ = writeln!(html, "<h2>Jobs (newest first, page {page})</h2>");
    if lines.is_empty() {
        html.push_str("<p>no jobs on this page</p>\n");
    } else {
        html.push_str(
            "<table id=\"jobs\"><tr><th>job</th><th>state</th><th>escrow</th><th>price</th><th>deadline (UTC)</th>\
             <th>verdict</th><th>reason</th><th>receipt</th></tr>\n",
        );
    }
    for line in lines {
        let id = escape(&line.job_id);
        let receipt = match line.has_receipt {
            true => format!("<a href=\"/jobs/{id}/receipt\">download</a>"),
            false => String::new(),
        };
        let fraud = if line.fraud { " (fraud proof)" } else { "" };
        let _ = writeln!(
            html,
            "<tr class=\"job\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"verdict\">{}{fraud}</td><td class=\"reason\">{}</td><td>{receipt}</td></tr>",
            escape(line.state),
            escape(&line.escrow),
            line.price,
            escape(&line.deadline),
            escape(&line.verdict),
            escape(&line.reason),
        );
    }
    if !lines.is_empty() {
        html.push_str("</table>\n");
    }
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(format!("<a href=\"/?page={}\">newer</a>", page - 1));
    }
    if lines.len() == JOBS_PER_PAGE as usize && page < MAX_PAGE {
        nav.push(format!("<a href=\"/?page={}\">older</a>", page + 1));
    }
    if !nav.is_empty() {
        let _ = writeln!(html, "<p>{}</p>", nav.join(" · "));
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix milliseconds.
pub(crate) fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn dates_are_known_answers() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_169_599_000), "2026-12-01 23:59:59");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00");
    }

    #[test]
    fn page_numbers_are_bounded() {
        assert_eq!(page_number(None), Some(0));
        assert_eq!(page_number(Some("")), Some(0));
        assert_eq!(page_number(Some("page=3")), Some(3));
        assert_eq!(page_number(Some("page=10001")), None);
        assert_eq!(page_number(Some("page=-1")), None);
        assert_eq!(page_number(Some("x=1")), None);
    }
}
