//! `knit event-display`: a sink that prints every CloudEvent it receives, in the format of
//! Knative's `event_display`.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use knit_channels::{DataKind, Event};
use knit_dispatcher::binding::{self, Decoded};

/// Render one event like Knative's event_display does.
pub fn render(ev: &Event) -> String {
    let mut out = String::from("☁️  cloudevents.Event\nContext Attributes,\n");
    out.push_str(&format!(
        "  specversion: {}\n  type: {}\n  source: {}\n",
        ev.spec_version.as_str(),
        ev.ty,
        ev.source
    ));
    if let Some(s) = &ev.subject {
        out.push_str(&format!("  subject: {s}\n"));
    }
    out.push_str(&format!("  id: {}\n", ev.id));
    if let Some(t) = &ev.time {
        out.push_str(&format!("  time: {t}\n"));
    }
    if let Some(s) = &ev.dataschema {
        out.push_str(&format!("  dataschema: {s}\n"));
    }
    if let Some(c) = &ev.datacontenttype {
        out.push_str(&format!("  datacontenttype: {c}\n"));
    }
    if !ev.extensions.is_empty() {
        out.push_str("Extensions,\n");
        let mut ext: Vec<_> = ev.extensions.iter().collect();
        ext.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in ext {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if let Some(d) = &ev.data {
        out.push_str("Data,\n");
        let text = match d.kind {
            DataKind::Json => serde_json::from_slice::<serde_json::Value>(&d.bytes)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&d.bytes).into_owned()),
            DataKind::Text => String::from_utf8_lossy(&d.bytes).into_owned(),
            DataKind::Binary => format!("<{} bytes of binary data>", d.bytes.len()),
        };
        for line in text.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

async fn receive(req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, 16 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let events = match binding::decode(&parts.headers, body) {
        Ok(Decoded::One(e)) => vec![*e],
        Ok(Decoded::Batch(b)) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut stdout = std::io::stdout().lock();
    for e in &events {
        let _ = writeln!(stdout, "{}", render(e));
    }
    let _ = stdout.flush();
    StatusCode::ACCEPTED.into_response()
}

/// Listen on `addr` and print every event until interrupted.
pub async fn run(addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("event-display listening on http://{local}");
    axum::serve(listener, axum::Router::new().fallback(receive)).await?;
    Ok(())
}
