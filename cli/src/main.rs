//! `rmicro`: the command line for rmicro and go-micro services, go-micro's `micro` in Rust.
//!
//! It reads the registry, broker and client options as services do (`--registry`,
//! `--registry_address`, `--broker`, `--broker_address`, `--client_*`, `--selector` and their
//! `MICRO_*` variables, through [`rmicro::config::with_client_flags`]), so whatever a service
//! was started with, the same flags find it.
//!
//! Exit status: 0 success; 1 the command ran but failed (a call answered with an error, a
//! service not found, a server that cannot be reached), with go-micro's error JSON for a call
//! and one line naming the problem otherwise; 2 bad usage or bad input (an unknown flag, a
//! request that is not JSON, an invalid option value), before anything is sent.

mod api;
mod commands;
mod mcp;
mod output;
mod web;

use std::process::ExitCode;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::output::Format;

/// What `rmicro --help` says.
const ABOUT: &str = "The rmicro command: list, describe and call rmicro and go-micro services, \
watch the registry, publish and subscribe through the broker, probe health.";

const AFTER: &str = "\
The registry, broker and client flags are a service's: the same --registry (mdns by default), \
--broker (http by default) and MICRO_* variables find the same services.

Exit status: 0 success; 1 the command failed (a call's error JSON is printed); 2 bad usage or \
bad input.";

#[derive(Debug, Parser)]
#[command(name = "rmicro", version, about = ABOUT, after_help = AFTER)]
struct Cli {
    /// Output: `text`, aligned for people, or `json`, for scripts
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the registered services, their versions and node counts
    Services,
    /// Show a service's nodes (id, address, metadata, age) and endpoints (request and response shapes)
    Describe {
        /// The service's name
        service: String,
    },
    /// Call an endpoint with a JSON request and print the JSON response
    Call(commands::CallArgs),
    /// Read and watch the registry
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Publish to and subscribe to topics through the broker
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
    /// Every node's readiness (`/health/ready`, or go-micro's `Debug.Health`)
    Health {
        /// The service's name
        service: String,
    },
    /// An HTTP gateway: `POST /{service}/{Endpoint}` with a JSON body answers the endpoint's
    /// JSON reply, or go-micro's error JSON with the error's code as the status
    Api {
        /// Where to listen (loopback unless told otherwise)
        #[arg(long, default_value = "127.0.0.1:8080")]
        address: String,
    },
    /// The registered endpoints as Model Context Protocol tools
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// A web dashboard: services, nodes with their health and metrics, a form to call an
    /// endpoint, the registry's changes live, a topic's messages
    Web {
        /// Where to listen (loopback unless told otherwise)
        #[arg(long, default_value = "127.0.0.1:8082")]
        address: String,
    },
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Every registered service, with its nodes
    List,
    /// One service's records, as the registry holds them
    Get {
        /// The service's name
        service: String,
    },
    /// Print each change (a node registered, updated or gone) until Ctrl-C
    Watch {
        /// Watch only this service
        service: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Serve MCP, on standard input and output (what an MCP client starts; the default) or
    /// over streamable HTTP: one tool per endpoint, `service.Endpoint`, described by the
    /// handler's doc comment
    Serve {
        /// Standard input and output (the default)
        #[arg(long, conflicts_with = "address")]
        stdio: bool,
        /// Serve streamable HTTP at this address instead, on `/mcp` (loopback unless told
        /// otherwise)
        #[arg(long)]
        address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BrokerCommand {
    /// Publish one JSON message
    Publish(PublishArgs),
    /// Print each message of a topic and its headers until Ctrl-C
    Subscribe(SubscribeArgs),
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The topic
    topic: String,
    /// The message, JSON
    message: String,
    /// A header, `key:value`; repeat for more
    #[arg(long = "header", value_name = "KEY:VALUE")]
    headers: Vec<String>,
}

#[derive(Debug, Args)]
struct SubscribeArgs {
    /// The topic
    topic: String,
    /// Share the messages with the other members of this queue group
    #[arg(long)]
    queue: Option<String>,
    /// Stop after this many messages
    #[arg(long)]
    count: Option<u64>,
}

/// A command's failure: what to print and the exit status.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or bad input (exit 2): one line.
    Usage(String),
    /// The command failed (exit 1): one line on stderr.
    Failed(String),
    /// A call failed (exit 1): go-micro's error JSON, on stdout.
    Call(rmicro::Error),
}

impl Failure {
    fn report(self) -> ExitCode {
        match self {
            Failure::Usage(line) => {
                eprintln!("error: {line}");
                ExitCode::from(2)
            }
            Failure::Failed(line) => {
                eprintln!("error: {line}");
                ExitCode::from(1)
            }
            Failure::Call(err) => {
                println!("{err}");
                ExitCode::from(1)
            }
        }
    }
}

impl From<rmicro::Error> for Failure {
    fn from(err: rmicro::Error) -> Self {
        Failure::Failed(err.detail)
    }
}

#[rmicro::main]
async fn main() -> ExitCode {
    let command = rmicro::config::with_client_flags(Cli::command());
    let matches = command.get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let options = match rmicro::config::Options::from_matches(
        &rmicro::config::Layer::default(),
        &matches,
        env,
    ) {
        Ok(options) => options,
        Err(e) => return Failure::Usage(e.to_string()).report(),
    };
    match run(cli, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn run(cli: Cli, options: rmicro::config::Options) -> Result<(), Failure> {
    let out = output::Out::new(cli.output);
    let client = rmicro::Client::from_options(&options)?;
    let registry = if options.registry_address.is_empty() {
        options.registry.clone()
    } else {
        format!("{} at {}", options.registry, options.registry_address)
    };
    match cli.command {
        Command::Services => commands::services(&client, &out).await,
        Command::Describe { service } => commands::describe(&client, &service, &out).await,
        Command::Call(args) => commands::call(&client, args, &out).await,
        Command::Registry { command } => match command {
            RegistryCommand::List => commands::registry_list(&client, &out).await,
            RegistryCommand::Get { service } => {
                commands::registry_get(&client, &service, &out).await
            }
            RegistryCommand::Watch { service } => {
                commands::registry_watch(&client, service, &out).await
            }
        },
        Command::Broker { command } => match command {
            BrokerCommand::Publish(args) => {
                commands::publish(&client, &args.topic, &args.message, &args.headers, &out).await
            }
            BrokerCommand::Subscribe(args) => {
                commands::subscribe(&client, &args.topic, args.queue, args.count, &out).await
            }
        },
        Command::Health { service } => commands::health(&client, &service, &out).await,
        Command::Api { address } => api::serve(client, &address).await,
        Command::Web { address } => web::serve(client, &address, registry).await,
        Command::Mcp {
            command: McpCommand::Serve { address, .. },
        } => match address {
            Some(address) => mcp::serve_http(client, &address).await,
            None => mcp::serve_stdio(client).await,
        },
    }
}
