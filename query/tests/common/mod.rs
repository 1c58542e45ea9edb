//! Helpers shared by the emulator tests of the `auditq` binary.

/// The emulator endpoint, or a failure that names the command that provides it.
pub fn emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "this test needs the AWS API emulator: run ./scripts/test.sh, which installs and \
             starts moto and sets AWS_ENDPOINT_URL"
        )
    })
}

/// A suffix that keeps buckets, queues and topics of concurrent tests apart.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}
