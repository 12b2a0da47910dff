//! `sixin`: the server and its operator commands in one binary.

use std::path::PathBuf;

mod bench;
mod client_cmd;
mod render;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sixin_server::config::redact_url;
use sixin_server::domain::NewUserRequest;
use sixin_server::Config;

#[derive(Parser)]
#[command(
    name = "sixin",
    version,
    about = "A Bilibili-compatible private-message server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: client_cmd::ClientOpts,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Seed a database, serve it and measure it under concurrent HTTP load.
    Bench(bench::BenchArgs),
    /// Manage fan groups (应援团).
    #[command(subcommand)]
    Group(GroupCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

#[derive(Args, Clone)]
struct DbArgs {
    /// `sqlite://PATH` or `postgres://...` (default: the config's, `sqlite://./sixin-data/sixin.db`).
    #[arg(long)]
    database: Option<String>,
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl DbArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut c = Config::load(self.config.as_deref()).context("loading the configuration")?;
        if let Some(db) = &self.database {
            c.database = db.clone();
        }
        Ok(c)
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    db: DbArgs,
    /// Seed a small demo world into an empty database and print its logins.
    #[arg(long)]
    demo: bool,
    /// Let the admin API set and advance the clock.
    #[arg(long)]
    test_mode: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print a login for it as JSON.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        mid: Option<u64>,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a fresh login for an existing user as JSON.
    Login {
        #[arg(long)]
        mid: u64,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Open a fan group (its owner is the first member); prints the group as JSON.
    Create {
        #[arg(long)]
        owner: u64,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        cover: String,
        /// 0 应援团, 2 官方群.
        #[arg(long = "type", default_value_t = 0)]
        group_type: u8,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add a member (welcomed with a 306 message).
    Add {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        mid: u64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a member (302); their access to the history ends.
    Remove {
        #[arg(long)]
        group: u64,
        #[arg(long)]
        mid: u64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Freeze a group (303): nobody can send to it.
    Freeze {
        #[arg(long)]
        group: u64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Dissolve a group (304).
    Dissolve {
        #[arg(long)]
        group: u64,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the documented default configuration file.
    PrintDefault,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIXIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(args) = cli.command {
        // The configuration decides how many request threads the server runs on (more than
        // cores, see Config::workers), so it is read before the runtime exists.
        let config = args.db.load()?;
        runtime.worker_threads(config.worker_threads());
        return runtime.build()?.block_on(serve(args, config));
    }
    runtime.build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => unreachable!("main runs the server on a runtime of its own"),
        Command::User(UserCommand::Add {
            name,
            mid,
            password,
            db,
        }) => {
            let svc = sixin_server::build(db.load()?).await?;
            let login = svc
                .create_user(NewUserRequest {
                    mid,
                    name,
                    password,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&login)?);
            Ok(())
        }
        Command::User(UserCommand::Login { mid, db }) => {
            let svc = sixin_server::build(db.load()?).await?;
            let login = svc
                .create_login(mid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&login)?);
            Ok(())
        }
        Command::Client(cmd) => client_cmd::run(cmd, &cli.client).await,
        Command::Group(cmd) => group(cmd).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", Config::default_toml());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs, mut config: Config) -> anyhow::Result<()> {
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.test_mode |= args.test_mode;
    let listen = config.listen.clone();
    let database = redact_url(&config.database);
    let svc = sixin_server::build(config).await?;
    if args.demo {
        let logins = sixin_server::demo::seed(&svc).await?;
        println!(
            "# demo logins (password for all: {})",
            sixin_server::demo::DEMO_PASSWORD
        );
        for l in logins {
            println!("{}", serde_json::to_string(&l)?);
        }
    }
    let running = sixin_server::start_with(svc, &listen).await?;
    tracing::info!(addr = %running.addr, %database, "sixin is serving");
    println!("# sixin listening on http://{}", running.addr);
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r?;
            tracing::info!("shutting down");
            running.stop().await
        }
    }
}

async fn group(cmd: GroupCommand) -> anyhow::Result<()> {
    let db = match &cmd {
        GroupCommand::Create { db, .. }
        | GroupCommand::Add { db, .. }
        | GroupCommand::Remove { db, .. }
        | GroupCommand::Freeze { db, .. }
        | GroupCommand::Dissolve { db, .. } => db.clone(),
    };
    let svc = sixin_server::build(db.load()?).await?;
    let info = match cmd {
        GroupCommand::Create {
            owner,
            name,
            cover,
            group_type,
            ..
        } => svc.create_group(owner, &name, &cover, group_type).await,
        GroupCommand::Add { group, mid, .. } => svc.join_group(group, mid).await,
        GroupCommand::Remove { group, mid, .. } => svc.leave_group(group, mid).await,
        GroupCommand::Freeze { group, .. } => svc.freeze_group(group).await,
        GroupCommand::Dissolve { group, .. } => svc.dissolve_group(group).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string(&info)?);
    Ok(())
}
