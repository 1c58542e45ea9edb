//! Writes the seeded month with planted faults that `auditq coverage`'s test checks
//! (`auditq_tests::month`): 5 accounts, 2 regions, 2,000 sessions, a missing CloudTrail hour, ten
//! recordings cut short, five unrecorded sessions and a host whose auditd stops. For the
//! coverage and evidence benchmark (`benches/coverage_month.sh`).
//!
//!   AUDITQ_SIGNING_KEY=... cargo run --release --example generate_month -- DIR
//!
//! With `AUDITQ_SIGNING_KEY` (base64 of a 32-byte seed) every commit's digest is signed, so
//! `auditq evidence` can bundle it.

use auditq_ingest::Lake;
use auditq_ingest::digest::SigningKey;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench-month".into());
    let key = match std::env::var("AUDITQ_SIGNING_KEY") {
        Ok(text) => Some(std::sync::Arc::new(
            SigningKey::parse(&text).map_err(|e| anyhow::anyhow!(e))?,
        )),
        Err(_) => None,
    };
    let lake = Lake::new(dir.clone()).with_signing_key(key);
    let started = std::time::Instant::now();
    let planted = auditq_tests::month::write(&lake).await?;
    println!(
        "{dir}: {} sessions, {} commands, {} CloudTrail records, {} host events in {:.1} s",
        planted.rows[0],
        planted.rows[1],
        planted.rows[2],
        planted.rows[3],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
