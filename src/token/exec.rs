//! `halo-gateway token exec -- COMMAND`: runs COMMAND with the token in `HALO_TOKEN` (the
//! environment, not argv, where other users could read it with `ps`), its stdin, stdout and
//! stderr those of this process, and hands back its exit status.

use std::ffi::OsString;
use std::process::ExitCode;

use super::error::TokenError;

/// The variable COMMAND finds the access token in.
pub const TOKEN_VARIABLE: &str = "HALO_TOKEN";

/// Runs `command` to completion; its exit code, or 128 + the signal that ended it (as shells
/// report it).
pub async fn run(command: &[OsString], token: &str) -> Result<ExitCode, TokenError> {
    let Some((program, args)) = command.split_first() else {
        return Err(TokenError::usage("token exec: no COMMAND after --"));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env(TOKEN_VARIABLE, token)
        .spawn()
        .map_err(|source| TokenError::Exec {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    // Ctrl-C reaches the child through the terminal's process group; this process waits for
    // the child's own exit instead of dying first.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    .map_err(|source| TokenError::Exec {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    Ok(ExitCode::from(exit_code(status)))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from((128 + signal) & 0xff).unwrap_or(1);
    }
    1
}
