//! The `knit` binary: CLI, control plane, standalone wiring and admin API. Data-plane logic
//! lives in the library crates; this crate only wires them.

// A binary has no public API: `pub` here only marks what other modules of the binary use.
#![allow(unreachable_pub)]

mod admin;
mod cli;
mod control;
mod reaper;
mod run;

use std::process::ExitCode;

/// mimalloc: measured in the benchmark, glibc malloc cost about a sixth of the data plane's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use cli::{Cli, Command};

/// Admission checks that live in other crates.
pub(crate) fn hooks() -> knit_crds::admission::Hooks {
    knit_crds::admission::Hooks {
        cesql: Some(|text| knit_broker::cesql::check(text).map_err(knit_crds::Error::expression)),
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == reaper::ARG) {
        return reaper::run();
    }
    knit_dispatcher::sender::install_crypto_provider();
    let cli = Cli::parse();
    // `knit run` logs its progress; the other commands only warnings and errors.
    init_tracing(if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Validate { files } => Ok(if cli::validate::run(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }),
            Command::Get {
                kind,
                namespace,
                events,
                server,
                ..
            } if matches!(kind.as_str(), "events" | "event") => {
                cli::trace::list(&server, &namespace, &events)
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
            Command::Trace(args) => cli::trace::trace(&args).await.map(|known| {
                if known {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }),
            Command::Get {
                kind,
                name,
                namespace,
                all_namespaces,
                output,
                server,
                ..
            } => cli::client::get(
                &server,
                &kind,
                name.as_deref(),
                &namespace,
                all_namespaces,
                output,
            )
            .await
            .map(|_| ExitCode::SUCCESS),
            Command::Describe {
                kind,
                name,
                namespace,
                server,
            } => cli::client::describe(&server, &kind, &name, &namespace)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Apply { files, server } => {
                cli::client::apply(&server, &files).await.map(|ok| {
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                })
            }
            Command::Delete {
                kind,
                name,
                namespace,
                server,
            } => cli::client::delete(&server, &kind, &name, &namespace)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Filter(cli::FilterCommand::Test {
                files,
                broker,
                event,
                server,
            }) => {
                let matched = match broker {
                    Some(b) => cli::filter::online(&server, &b, &event).await,
                    None => cli::filter::offline(&files, &event),
                };
                Ok(match matched {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::from(1),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::from(2)
                    }
                })
            }
            Command::Logs {
                target,
                namespace,
                revision,
                follow,
                server,
            } => cli::client::logs(&server, &target, &namespace, revision.as_deref(), follow)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Replay(cli::ReplayCommand::Trigger(args)) => cli::replay::trigger(args).await,
            Command::Send(args) => cli::send::run(args).await.map(|_| ExitCode::SUCCESS),
            Command::EventDisplay { listen } => {
                cli::display::run(listen).await.map(|_| ExitCode::SUCCESS)
            }
            Command::Crds { write } => crds(write),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crds(write: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    use knit_crds::{Kind, crd};
    match write {
        None => print!("{}", crd::all_crds_yaml()),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for kind in Kind::ALL {
                if let Some(yaml) = crd::crd_yaml(*kind) {
                    let path = dir.join(crd::manifest_file_name(*kind));
                    std::fs::write(&path, yaml)?;
                    println!("wrote {}", path.display());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
