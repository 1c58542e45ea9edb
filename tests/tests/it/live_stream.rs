//! A Session Manager stream read while the session is still going: what was stored while a
//! command was being typed is revised when the grown stream is read again.

use auditq_ingest::lake::Filter;
use auditq_ingest::ssm::StreamChunk;
use auditq_ingest::{Lake, Parsed, PipelineBuilder};
use auditq_model::{Command, Table};

fn chunk(second: u32, lines: &[&str]) -> StreamChunk {
    StreamChunk {
        session_id: "alice-0123456789abcdef0".into(),
        time: chrono::DateTime::from_timestamp(1_791_190_800 + i64::from(second), 0)
            .unwrap_or_default(),
        region: Some("eu-west-1".into()),
        target: Some("i-0a1b2c3d4e5f60711".into()),
        principal_arn: Some("arn:aws:iam::111122223333:user/alice".into()),
        run_as: Some("ec2-user".into()),
        lines: lines.iter().map(|s| s.to_string()).collect(),
        origin: "cwl://aws/ssm/sessions".into(),
    }
}

async fn stored(lake: &Lake) -> Vec<(i64, String)> {
    let mut rows: Vec<Command> = lake
        .rows(Filter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.sort_by_key(|c| c.seq);
    rows.into_iter().map(|c| (c.seq, c.cmd)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_stored_while_being_typed_is_revised_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let lake = Lake::new(dir.path().join("lake").display().to_string());
    let pipeline = PipelineBuilder::new(lake.clone())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut chunks = vec![
        chunk(0, &["$ id", "uid=1000(ec2-user)", "$ "]),
        chunk(1, &["sudo sys"]),
    ];
    let read = |chunks: &[StreamChunk]| Parsed {
        chunks: chunks.to_vec(),
        ..Parsed::default()
    };
    pipeline
        .store(read(&chunks))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored(&lake).await,
        [(1, "id".to_string()), (2, "sudo sys".to_string())]
    );

    chunks.push(chunk(
        2,
        &["temctl restart nginx", "$ whoami", "ec2-user", "$ "],
    ));
    let summary = pipeline
        .store(read(&chunks))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        stored(&lake).await,
        [
            (1, "id".to_string()),
            (2, "sudo systemctl restart nginx".to_string()),
            (3, "whoami".to_string()),
        ]
    );
    let commands = &summary.tables[&Table::Commands];
    assert_eq!((commands.read, commands.added, commands.updated), (3, 1, 1));

    // Reading the same stream again changes nothing.
    let again = pipeline
        .store(read(&chunks))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let commands = &again.tables[&Table::Commands];
    assert_eq!((commands.added, commands.updated), (0, 0));
}
