//! The ECS service: `auditq-service` runs until SIGTERM (or Ctrl-C), then drains and exits 0;
//! `auditq-service --health-check` asks a running one for `/healthz` (for container health
//! checks in images without curl).

use std::process::ExitCode;

use auditq_deploy::Config;
use auditq_ingest::aws::AwsSettings;

fn main() -> ExitCode {
    auditq_deploy::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "auditq service failed");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_environment()?;
    if std::env::args().any(|a| a == "--health-check") {
        let mut address: std::net::SocketAddr = config.service.listen.parse()?;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        auditq_deploy::metrics::check_health(address).await?;
        return Ok(());
    }
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM; stopping");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        }
    };
    auditq_deploy::service::run(
        config,
        &AwsSettings::from_vars(|name| std::env::var(name).ok()),
        shutdown,
    )
    .await?;
    Ok(())
}
