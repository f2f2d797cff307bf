/// What can go wrong building the test network or running the nemesis.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the cluster did not become healthy within {0:?}; node output:\n{1}")]
    NotHealthy(std::time::Duration, String),
    #[error("the checker rejected the history: {0}")]
    Checker(#[from] sluice_checker::CheckerError),
    #[error("the run thread panicked: {0}")]
    Panicked(String),
}
