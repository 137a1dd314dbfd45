//! The `knit` binary: CLI, control plane, standalone wiring and admin API. Data-plane logic
//! lives in the library crates; this crate only wires them.

// A binary has no public API: `pub` here only marks what other modules of the binary use.
#![allow(unreachable_pub)]

mod admin;
mod cli;
mod control;
mod issuers;
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
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_)) {
        return_freed_memory_promptly();
    }
    knit_dispatcher::sender::install_crypto_provider();
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's settings for `knit run`, unless the user set them: give freed memory back to
/// the system at once, and commit arena memory as it is used rather than all at once.
const ALLOCATOR_SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

/// Make mimalloc return freed pages to the system when they are freed: by default it waits a
/// second and then purges only when it is next busy, so an idle `knit run` kept what loading
/// its objects had freed (10,000 Triggers: 213 MiB RSS; 185 MiB with these settings). mimalloc
/// reads its options from the environment before `main`, so the process replaces itself once
/// (same pid, arguments and descriptors) with the settings; if that fails it goes on as it is.
/// No thread has started yet.
fn return_freed_memory_promptly() {
    use std::os::unix::process::CommandExt;
    let (first, _) = ALLOCATOR_SETTINGS[0];
    if std::env::var_os(first).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    for (name, value) in ALLOCATOR_SETTINGS {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    // `exec` returns only when it failed.
    let _failed = command.args(args).exec();
}

/// Exit 0 when `ok`, else `code`.
fn exit(ok: bool, code: u8) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(code)
    }
}

/// Run one command; an error is printed by `main` and exits 1.
async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Run(args) => run::run(*args).await,
        Command::Validate { files } => Ok(exit(cli::validate::run(&files), 2)),
        Command::Get(args) if args.is_events() => done(cli::events::list(&args).await),
        Command::Get(args) if args.is_replicas() => done(cli::replicas::list(&args).await),
        Command::Get(args) => done(cli::client::get(&args).await),
        Command::Stats(args) => done(cli::stats::run(&args).await),
        Command::Install(args) => cli::install::run(&args).map(|ok| exit(ok, 2)),
        Command::Trace(args) => cli::trace::trace(&args).await.map(|known| exit(known, 1)),
        Command::Describe {
            kind,
            name,
            namespace,
            server,
        } => done(cli::client::describe(&server, &kind, &name, &namespace).await),
        Command::Apply { files, server } => {
            let ok = cli::client::apply(&server, &files).await?;
            Ok(exit(ok, 2))
        }
        Command::Delete {
            kind,
            name,
            namespace,
            server,
        } => done(cli::client::delete(&server, &kind, &name, &namespace).await),
        Command::Filter(cli::FilterCommand::Test {
            files,
            broker,
            namespace,
            event,
            server,
        }) => Ok(filter_test(&files, broker, namespace, &event, &server).await),
        Command::Logs {
            target,
            namespace,
            revision,
            follow,
            server,
        } => {
            done(cli::client::logs(&server, &target, &namespace, revision.as_deref(), follow).await)
        }
        Command::Replay(cli::ReplayCommand::Trigger(args)) => cli::replay::trigger(args).await,
        Command::Send(args) => done(cli::send::run(args).await),
        Command::EventDisplay { listen } => done(cli::display::run(listen).await),
        Command::Crds { write } => crds(write),
    }
}

/// `knit filter test`: exit 0 when a Trigger matched, 1 when none did, 2 on errors.
async fn filter_test(
    files: &[std::path::PathBuf],
    broker: Option<String>,
    namespace: Option<String>,
    event: &str,
    server: &cli::ServerArgs,
) -> ExitCode {
    let matched = match broker {
        Some(b) => online_filter_test(server, &b, namespace.as_deref(), event).await,
        None => cli::filter::offline(files, event),
    };
    match matched {
        Ok(matched) => exit(matched, 1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `knit filter test --broker`: the Broker named either way, checked to exist (the error names
/// the ones there are, after the server's own words for it), then tested on the server.
async fn online_filter_test(
    server: &cli::ServerArgs,
    broker: &str,
    namespace: Option<&str>,
    event: &str,
) -> anyhow::Result<bool> {
    use cli::reference::{self, Target};
    let at = reference::parse("--broker", broker, namespace)?;
    let client = cli::client::Client::new(server)?;
    if let Some(there) = reference::missing(&client, Target::Broker, &at).await? {
        anyhow::bail!("no running Broker {at}; {there}");
    }
    cli::filter::online(server, &at.to_string(), event).await
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
