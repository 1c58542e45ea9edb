//! Bad input is set aside with its reason, the rest of the batch goes on, nothing panics.

use std::io::Write;

use auditq_ingest::{Lake, Limits, ingest_paths};
use auditq_model::Table;
use flate2::{Compression, write::GzEncoder};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    enc.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn record(id: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2026-10-06T18:02:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","eventID":"{id}","recipientAccountId":"444455556666","userIdentity":{{"type":"IAMUser","userName":"dave","arn":"arn:aws:iam::444455556666:user/dave"}}}}"#
    )
}

#[tokio::test]
async fn bad_input_is_rejected_with_reasons_and_the_rest_is_ingested() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(input.join(name), bytes).unwrap_or_else(|e| panic!("{e}"))
    };

    let good = format!(
        r#"{{"Records":[{},{}]}}"#,
        record("good-1"),
        record("good-2")
    );
    write("a-good.json.gz", &gzip(good.as_bytes()));
    let full = gzip(format!(r#"{{"Records":[{}]}}"#, record("lost-1")).as_bytes());
    write("b-truncated.json.gz", &full[..full.len() / 2]);
    write("c-malformed.json", b"{\"Records\": [ {\"eventTime\": \n");
    // NDJSON: a good line, invalid UTF-8, a 10 MB line, another good line.
    let mut ndjson = record("nd-1").into_bytes();
    ndjson.extend_from_slice(b"\n{\"eventSource\":\"\xff\xfe\xfd\",\"eventName\":\"x\"}\n");
    ndjson.extend_from_slice(
        format!("{{\"pad\":\"{}\"}}\n", "A".repeat(10 * 1024 * 1024)).as_bytes(),
    );
    ndjson.extend_from_slice(record("nd-2").as_bytes());
    write("d-mixed.ndjson", &ndjson);
    write("e-bomb.json.gz", &gzip(&vec![b' '; 64 * 1024 * 1024]));
    write("f-binary.log", &[0u8, 159, 146, 150, 0xff, b'\n', 1, 2, 3]);

    let lake_dir = dir.path().join("lake");
    let lake = Lake::new(lake_dir.display().to_string());
    let limits = Limits {
        max_decompressed_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let pipeline = auditq_ingest::PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = ingest_paths(&pipeline, std::slice::from_ref(&input), &limits, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(summary.objects, 6);
    assert_eq!(summary.tables[&Table::Cloudtrail].added, 4, "{summary:?}");
    assert_eq!(summary.tables[&Table::Rejects].added, 6, "{summary:?}");
    let reasons: Vec<_> = summary.reject_reasons.keys().map(String::as_str).collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("truncated gzip")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("gzip inflates past")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("malformed JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("bytes exceeds the N-byte cap")),
        "{reasons:?}"
    );
    assert!(
        summary
            .reject_examples
            .values()
            .any(|r| r.contains("bytes exceeds the 1048576-byte cap")),
        "{summary:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("unrecognised format")),
        "{reasons:?}"
    );

    let ctx = auditq_query::context(&lake)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let batches = auditq_query::run_sql(
        &ctx,
        "select origin, position from rejects order by origin, position",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    auditq_query::write_batches(
        &batches,
        batches[0].schema(),
        auditq_query::OutputFormat::Csv,
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out).replace(&format!("{}/", input.display()), "");
    assert_eq!(
        text,
        "origin,position\nb-truncated.json.gz,object\nc-malformed.json,object\nd-mixed.ndjson,line 2\n\
         d-mixed.ndjson,line 3\ne-bomb.json.gz,object\nf-binary.log,object\n"
    );

    // Reading the same bad input again stores nothing new.
    let again = ingest_paths(&pipeline, &[input], &limits, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.tables[&Table::Rejects].added, 0);
    assert_eq!(again.tables[&Table::Cloudtrail].added, 0);
}
