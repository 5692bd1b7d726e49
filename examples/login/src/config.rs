//! The example's settings, from flags or the environment (flags win).

use std::time::Duration;

/// What `--help` prints.
pub const USAGE: &str = "\
login example: a sign-in flow on session-layer

USAGE: cargo run --example login -- [OPTIONS]

OPTIONS (each also read from the environment variable in brackets; a flag wins):
  --addr HOST:PORT          where to listen [ADDR] (default 127.0.0.1:3000)
  --store URL               the session store [SESSION_STORE] (default memory):
                              memory, sqlite://PATH, postgres://..., mysql://...,
                              redis://...
  --idle-timeout-secs N     end browser-session sessions after N idle seconds
                              [IDLE_TIMEOUT_SECS] (default: the layer's, 1 hour)
  --sign-in-limit N         sign-in and sign-out attempts per minute and client address
                              [SIGN_IN_LIMIT] (default 20; 0 turns the limit off)
  --behind-tls              the app is served over https (a TLS proxy in front):
                              keep Secure and the __Host- cookie name [BEHIND_TLS=1]
  -h, --help                print this
";

/// How the app runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub addr: String,
    /// Which session store; see [`open_store`](super::open_store).
    pub store: String,
    /// The idle timeout of sessions without "remember me"; `None` keeps the layer's default.
    pub idle_timeout: Option<Duration>,
    /// Served over https, so cookies keep `Secure` and the `__Host-` name.
    pub behind_tls: bool,
    /// Sign-in and sign-out attempts allowed per minute and client address (a burst of that
    /// many, then one every `60 / N` seconds); 0 turns the limit off.
    pub sign_in_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3000".to_owned(),
            store: "memory".to_owned(),
            idle_timeout: None,
            behind_tls: false,
            sign_in_per_minute: 20,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the app with these settings.
    Run(Config),
    /// Print the usage and stop.
    Help,
}

impl Config {
    /// Reads the settings from `env` (a lookup such as `std::env::var`) and `args` (without
    /// the program name).
    pub fn parse(
        env: impl Fn(&str) -> Option<String>,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Command, String> {
        let mut config = Config::default();
        if let Some(addr) = env("ADDR") {
            config.addr = addr;
        }
        if let Some(store) = env("SESSION_STORE") {
            config.store = store;
        }
        if let Some(secs) = env("IDLE_TIMEOUT_SECS") {
            config.idle_timeout = Some(seconds("IDLE_TIMEOUT_SECS", &secs)?);
        }
        if let Some(limit) = env("SIGN_IN_LIMIT") {
            config.sign_in_per_minute = count("SIGN_IN_LIMIT", &limit)?;
        }
        if let Some(flag) = env("BEHIND_TLS") {
            config.behind_tls = truthy("BEHIND_TLS", &flag)?;
        }

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .map(str::to_owned)
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
            };
            match flag.as_str() {
                "--addr" => config.addr = value()?,
                "--store" => config.store = value()?,
                "--idle-timeout-secs" => {
                    config.idle_timeout = Some(seconds("--idle-timeout-secs", &value()?)?);
                }
                "--sign-in-limit" => {
                    config.sign_in_per_minute = count("--sign-in-limit", &value()?)?;
                }
                "--behind-tls" if inline.is_none() => config.behind_tls = true,
                "-h" | "--help" => return Ok(Command::Help),
                _ => return Err(format!("unknown argument {arg:?}\n\n{USAGE}")),
            }
        }
        Ok(Command::Run(config))
    }
}

fn seconds(name: &str, text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{name} must be a whole number of seconds, at least 1 (got {text:?})"
        )),
    }
}

fn count(name: &str, text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| format!("{name} must be a whole number, 0 for no limit (got {text:?})"))
}

fn truthy(name: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{name} must be 1/true or 0/false (got {text:?})")),
    }
}
