//! The long-running service (an ECS task): follows log groups and an SQS queue of S3
//! notifications, commits micro-batches to the lake, serves `/healthz` and `/metrics`.
//!
//! Shutdown (SIGTERM from ECS): the service stops taking input, lets each source finish the
//! batch in hand (rules, alerts published or kept in the outbox, rows and positions
//! committed), delivers what the outbox holds, and returns. Input read but not committed when the
//! stop timeout passes is read again on the next start: positions are committed only with the
//! rows they produced.
//!
//! A source that fails (an AWS error, the lake unreachable) is counted, logged, and restarted
//! after a pause that doubles up to a minute; the other sources go on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditq_ingest::aws::{AwsClients, AwsSettings, follow_cwl, ingest_sqs, queue_url};
use auditq_ingest::{IngestSummary, Pipeline};

use crate::config::Config;
use crate::error::DeployError;
use crate::metrics::Metrics;

/// A running service's shared parts.
#[derive(Debug, Clone)]
struct Shared {
    pipeline: Pipeline,
    clients: AwsClients,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl Shared {
    fn committed(&self, source: &str, summary: &IngestSummary) {
        self.metrics.record_batch(summary, chrono::Utc::now());
        let added: usize = summary.tables.values().map(|c| c.added).sum();
        if added > 0 || summary.rejected() > 0 || summary.alerts.raised > 0 {
            tracing::info!(
                source,
                summary = %crate::handler::summary_json(summary),
                "batch committed"
            );
        }
    }

    /// Sleeps up to `pause`, waking early when the service stops.
    async fn pause(&self, pause: Duration) {
        let deadline = tokio::time::Instant::now() + pause;
        while !self.stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `attempt` until the service stops, restarting it after errors with backoff.
    async fn supervise<F, Fut>(&self, source: &str, attempt: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, DeployError>>,
    {
        let mut backoff = Duration::from_secs(1);
        while !self.stop.load(Ordering::Relaxed) {
            match attempt().await {
                // Done for now (nothing waiting): go round again.
                Ok(_) => backoff = Duration::from_secs(1),
                Err(error) => {
                    self.metrics.record_error(source);
                    tracing::error!(source, %error, retry_in_s = backoff.as_secs(), "source failed; retrying");
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

/// How often Systems Manager is asked for new Run Command invocations.
const RUN_COMMAND_POLL: Duration = Duration::from_secs(60);

/// Runs the service until `shutdown` completes, then drains and returns.
pub async fn run(
    config: Config,
    aws: &AwsSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DeployError> {
    let listen: SocketAddr = config
        .service
        .listen
        .parse()
        .map_err(|e| DeployError::Config {
            field: "service.listen".to_string(),
            message: format!("{e}"),
        })?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DeployError::Io {
            what: format!("cannot listen on {listen}"),
            source,
        })?;
    let clients = aws.clients().await;
    let pipeline = crate::pipeline(&config, aws, &clients).await?;
    let shared = Shared {
        pipeline,
        clients,
        config: Arc::new(config),
        metrics: Arc::new(Metrics::default()),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let http = {
        let metrics = shared.metrics.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = crate::metrics::answer(stream, &metrics).await;
                });
            }
        })
    };
    tracing::info!(
        %listen,
        lake = shared.pipeline.lake().location(),
        log_groups = ?shared.config.sources.log_groups,
        sqs_queue = ?shared.config.sources.sqs_queue,
        "auditq service started"
    );

    let mut sources = Vec::new();
    for group in shared.config.sources.log_groups.clone() {
        let shared = shared.clone();
        sources.push(tokio::spawn(async move {
            let uri = format!("cwl://{}", group.trim_start_matches("cwl://"));
            let mode = shared.config.follow_mode();
            shared
                .supervise(&uri, || async {
                    let report = |summary: &IngestSummary| shared.committed(&uri, summary);
                    follow_cwl(
                        &shared.pipeline,
                        &shared.clients.cwl,
                        &uri,
                        mode,
                        &shared.stop,
                        &report,
                    )
                    .await?;
                    Ok(true)
                })
                .await;
        }));
    }
    if let Some(queue) = shared.config.sources.sqs_queue.clone() {
        let shared = shared.clone();
        sources.push(tokio::spawn(async move {
            let name = format!("sqs://{queue}");
            let limits = shared.config.limits();
            shared
                .supervise(&name, || async {
                    let url = queue_url(&shared.clients.aws, &queue).await?;
                    // Drains what is waiting (long polls of 1 s), then returns.
                    let summary = ingest_sqs(
                        &shared.pipeline,
                        &shared.clients.s3,
                        &shared.clients.aws,
                        &url,
                        &limits,
                    )
                    .await?;
                    if summary.objects > 0 || summary.rejected() > 0 {
                        shared.committed(&name, &summary);
                    }
                    Ok(true)
                })
                .await;
        }));
    }
    if !shared.config.sources.run_command_regions.is_empty() {
        let lookup = Arc::new(aws.lookup().await);
        for region in shared.config.sources.run_command_regions.clone() {
            let shared = shared.clone();
            let lookup = lookup.clone();
            sources.push(tokio::spawn(async move {
                let name = format!("ssm-commands://{region}");
                shared
                    .supervise(&name, || async {
                        let summary = auditq_ingest::aws::ingest_run_commands(
                            &shared.pipeline,
                            &lookup,
                            &region,
                        )
                        .await?;
                        if summary.objects > 0 {
                            shared.committed(&name, &summary);
                        }
                        shared.pause(RUN_COMMAND_POLL).await;
                        Ok(true)
                    })
                    .await;
            }));
        }
    }
    let compaction = &shared.config.compaction;
    if compaction.every_hours > 0 || compaction.every_batches > 0 {
        let shared = shared.clone();
        sources.push(tokio::spawn(async move {
            let every = Duration::from_secs(shared.config.compaction.every_hours * 3600);
            let every_batches = shared.config.compaction.every_batches;
            let mut last = (tokio::time::Instant::now(), shared.metrics.batches());
            while !shared.stop.load(Ordering::Relaxed) {
                shared.pause(Duration::from_secs(1)).await;
                let by_time = !every.is_zero() && last.0.elapsed() >= every;
                let by_batches =
                    every_batches > 0 && shared.metrics.batches() - last.1 >= every_batches;
                if shared.stop.load(Ordering::Relaxed) || !(by_time || by_batches) {
                    continue;
                }
                last = (tokio::time::Instant::now(), shared.metrics.batches());
                let started = std::time::Instant::now();
                let lake = shared.pipeline.lake();
                let vacuum_every =
                    Duration::from_secs(shared.config.compaction.vacuum_every_hours * 3600);
                let compacted = async {
                    let merged = lake.merge_small_files().await?;
                    let vacuumed = lake
                        .vacuum_if_due(shared.config.vacuum_retention(), vacuum_every)
                        .await?;
                    Ok::<_, auditq_ingest::IngestError>((merged, vacuumed))
                };
                match compacted.await {
                    Ok((merged, vacuumed)) => {
                        let removed: u64 = merged.iter().map(|c| c.files_removed).sum();
                        let added: u64 = merged.iter().map(|c| c.files_added).sum();
                        let deleted: usize = vacuumed.iter().flatten().map(|(_, n)| n).sum();
                        tracing::info!(
                            files_removed = removed,
                            files_added = added,
                            files_vacuumed = deleted,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "lake compacted"
                        );
                    }
                    Err(error) => {
                        shared.metrics.record_error("compaction");
                        tracing::error!(%error, "compaction failed; tried again next period");
                    }
                }
            }
        }));
    }

    shutdown.await;
    tracing::info!("stopping: finishing the batches in hand");
    shared.metrics.set_stopping();
    shared.stop.store(true, Ordering::Relaxed);
    let timeout = Duration::from_secs(shared.config.service.stop_timeout_seconds);
    let drained = tokio::time::timeout(timeout, async {
        for source in sources {
            let _ = source.await;
        }
    })
    .await;
    if drained.is_err() {
        http.abort();
        return Err(DeployError::Io {
            what: "stopping".to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the batches in hand did not commit within {timeout:?}; they are read again on restart"
                ),
            ),
        });
    }
    let (delivered, kept) = shared.pipeline.flush_outbox().await?;
    http.abort();
    tracing::info!(delivered, kept, "stopped; everything read is committed");
    Ok(())
}
