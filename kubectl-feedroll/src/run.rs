//! The I/O shell: kubeconfig, API calls and watches around the pure parts. Every verb reads
//! what it needs, lets a pure function decide, and writes the result.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::CommandFactory;
use feedroll_crds::FeedRollout;
use feedroll_operator::brain::CommandKind;
use feedroll_operator::desired::{Names, Track};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_runtime::{WatchStreamExt, watcher};
use serde::Serialize;

use kubectl_feedroll::cli::{Cli, Global, Output, SetVerb, Verb};
use kubectl_feedroll::edit;
use kubectl_feedroll::exit::Exit;
use kubectl_feedroll::lint;
use kubectl_feedroll::render::{self, Palette};
use kubectl_feedroll::wait::{self, Outcome, WaitFor};

/// Where to print, and whether stdout is a terminal (colours, redraws in place).
pub struct Terminal<'a> {
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Colours for tables and views.
    pub palette: Palette,
    /// stdout is a terminal: `status -w` redraws in place.
    pub tty: bool,
}

impl Terminal<'_> {
    /// stdout, coloured when it is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect(out: &mut dyn Write) -> Terminal<'_> {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            out,
            palette: Palette {
                color: tty && !no_color,
            },
            tty,
        }
    }
}

/// A connection: the client, the namespace and who we are (for command authors).
struct Connection {
    client: Client,
    namespace: String,
    user: Option<String>,
}

async fn connect(g: &Global) -> anyhow::Result<Connection> {
    feedroll_operator::tls::install_crypto_provider();
    let kubeconfig = match &g.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .with_context(|| format!("reading the kubeconfig {}", path.display()))?,
        None => {
            Kubeconfig::read().context("reading the kubeconfig ($KUBECONFIG or ~/.kube/config)")?
        }
    };
    let context = g
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == context.as_ref())
        .and_then(|c| c.context.as_ref()?.user.clone());
    let options = KubeConfigOptions {
        context: g.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("loading the kubeconfig context")?;
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("building the Kubernetes client")?;
    Ok(Connection {
        client,
        namespace,
        user,
    })
}

impl Connection {
    fn rollouts(&self) -> Api<FeedRollout> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn get(&self, name: &str) -> anyhow::Result<FeedRollout> {
        self.rollouts().get(name).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => anyhow!(
                "feedrollout {name:?} not found in namespace {:?}",
                self.namespace
            ),
            e => anyhow!(e).context(format!("reading feedrollout {}/{name}", self.namespace)),
        })
    }
}

/// Runs `cli`, printing to `term`.
pub async fn run(cli: Cli, term: &mut Terminal<'_>) -> anyhow::Result<Exit> {
    let g = &cli.global;
    match &cli.verb {
        Verb::Lint { files } => return lint_files(files, g.output, term),
        Verb::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "kubectl-feedroll", term.out);
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    let conn = connect(g).await?;
    let now = Timestamp::now();
    match &cli.verb {
        Verb::List { name } => {
            let items = match name {
                Some(name) => vec![conn.get(name).await?],
                None => {
                    let api: Api<FeedRollout> = if g.all_namespaces {
                        Api::all(conn.client.clone())
                    } else {
                        conn.rollouts()
                    };
                    let mut items = api
                        .list(&ListParams::default())
                        .await
                        .context("listing feedrollouts")?
                        .items;
                    items.sort_by(|a, b| {
                        (&a.metadata.namespace, &a.metadata.name)
                            .cmp(&(&b.metadata.namespace, &b.metadata.name))
                    });
                    items
                }
            };
            if let Some(format) = g.output {
                match (name, items.as_slice()) {
                    (Some(_), [one]) => print(term.out, format, one)?,
                    _ => print(
                        term.out,
                        format,
                        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
                    )?,
                }
            } else if items.is_empty() {
                let scope = if g.all_namespaces {
                    "any namespace".to_owned()
                } else {
                    format!("namespace {}", conn.namespace)
                };
                writeln!(term.out, "No FeedRollouts found in {scope}.")?;
            } else {
                term.out.write_all(
                    render::list(&items, g.all_namespaces, now, term.palette).as_bytes(),
                )?;
            }
        }
        Verb::Status { name, watch } => {
            // Read first: a missing rollout is a clear error, not a silent watch.
            let fr = conn.get(name).await?;
            if *watch {
                // The watch starts with the current object: drawn once, then on every change.
                let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
                let mut changes = watcher(conn.rollouts(), config).applied_objects().boxed();
                let mut first = true;
                while let Some(fr) = changes
                    .try_next()
                    .await
                    .context("watching the feedrollout")?
                {
                    show_status(term, g.output, &fr, !first)?;
                    first = false;
                }
            } else {
                show_status(term, g.output, &fr, false)?;
            }
        }
        Verb::Timeline { name } => {
            let fr = conn.get(name).await?;
            match g.output {
                Some(format) => {
                    let history = fr.status.map(|s| s.history).unwrap_or_default();
                    print(term.out, format, &history)?;
                }
                None => term
                    .out
                    .write_all(render::timeline(&fr, None, term.palette).as_bytes())?,
            }
        }
        Verb::Promote { name, full } => {
            let kind = if *full {
                CommandKind::PromoteFull
            } else {
                CommandKind::PromoteStep
            };
            command(&conn, term, name, kind).await?;
        }
        Verb::Pause { name } => command(&conn, term, name, CommandKind::Pause).await?,
        Verb::Resume { name } => command(&conn, term, name, CommandKind::Resume).await?,
        Verb::Abort { name } => command(&conn, term, name, CommandKind::Abort).await?,
        Verb::Retry { name } => command(&conn, term, name, CommandKind::Retry).await?,
        Verb::Wait {
            name,
            target,
            timeout,
        } => return wait_for(&conn, term, name, *target, *timeout).await,
        Verb::Set(SetVerb::Image { name, image }) => {
            let fr = conn.get(name).await?;
            match edit::set_image(&fr, image)? {
                None => writeln!(
                    term.out,
                    "feedrollout {}/{name}: {image} already; nothing changed",
                    conn.namespace
                )?,
                Some((patch, old)) => {
                    json_patch(&conn, name, patch).await?;
                    writeln!(
                        term.out,
                        "feedrollout {}/{name}: image {old} -> {image}; the operator rolls the new revision out (kubectl feedroll status {name} -w)",
                        conn.namespace
                    )?;
                }
            }
        }
        Verb::Undo { name } => {
            let fr = conn.get(name).await?;
            let names = Names::of(&fr).map_err(|e| anyhow!("{e}"))?;
            let deployment = names.deployment(Track::Stable);
            let deployments: Api<Deployment> =
                Api::namespaced(conn.client.clone(), &conn.namespace);
            let stable = deployments
                .get(&deployment)
                .await
                .with_context(|| format!("reading the stable Deployment {deployment}"))?;
            match edit::undo(&fr, &stable)? {
                None => writeln!(
                    term.out,
                    "feedrollout {}/{name}: the spec is at the stable revision already; nothing changed",
                    conn.namespace
                )?,
                Some((patch, revision)) => {
                    json_patch(&conn, name, patch).await?;
                    writeln!(
                        term.out,
                        "feedrollout {}/{name}: spec set back to the stable revision {revision}; the operator removes the canary",
                        conn.namespace
                    )?;
                }
            }
        }
        Verb::Lint { .. } | Verb::Completion { .. } => {}
    }
    Ok(Exit::Ok)
}

fn show_status(
    term: &mut Terminal<'_>,
    output: Option<Output>,
    fr: &FeedRollout,
    redraw: bool,
) -> anyhow::Result<()> {
    if let Some(format) = output {
        return print(term.out, format, fr);
    }
    if redraw {
        if term.tty {
            // Cursor home, clear the screen: redraw in place.
            write!(term.out, "\u{1b}[H\u{1b}[2J")?;
        } else {
            writeln!(term.out)?;
        }
    }
    term.out
        .write_all(render::status(fr, Timestamp::now(), term.palette).as_bytes())?;
    term.out.flush()?;
    Ok(())
}

async fn command(
    conn: &Connection,
    term: &mut Terminal<'_>,
    name: &str,
    kind: CommandKind,
) -> anyhow::Result<()> {
    // Fails with a clear message before anything is written when the rollout does not exist.
    let fr = conn.get(name).await?;
    let millis = Timestamp::now().as_millisecond();
    let nonce = format!("{millis}-{}", std::process::id());
    let c = edit::command(kind, &nonce, conn.user.as_deref());
    conn.rollouts()
        .patch(name, &PatchParams::default(), &Patch::Merge(&c.patch))
        .await
        .with_context(|| format!("annotating feedrollout {}/{name}", conn.namespace))?;
    let st = fr.status.unwrap_or_default();
    let phase = st.phase.map_or("(none)", |p| p.as_str());
    writeln!(
        term.out,
        "feedrollout {}/{name}: {} requested (command {}{}); it was {phase} at weight {}%. The operator applies it once: kubectl feedroll status {name} -w",
        conn.namespace,
        kind.as_str(),
        c.id,
        conn.user
            .as_deref()
            .map(|u| format!(" by {u}"))
            .unwrap_or_default(),
        st.weight,
    )?;
    Ok(())
}

async fn json_patch(conn: &Connection, name: &str, patch: serde_json::Value) -> anyhow::Result<()> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).context("building the JSON patch")?;
    conn.rollouts()
        .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 422 || s.code == 409 => {
                anyhow!("feedrollout {}/{name} changed while this command ran ({}); nothing was changed, run it again", conn.namespace, s.message)
            }
            e => anyhow!(e).context(format!("patching feedrollout {}/{name}", conn.namespace)),
        })?;
    Ok(())
}

async fn wait_for(
    conn: &Connection,
    term: &mut Terminal<'_>,
    name: &str,
    target: WaitFor,
    timeout: Duration,
) -> anyhow::Result<Exit> {
    conn.get(name).await?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(conn.rollouts(), config).applied_objects().boxed();
    let watch = async {
        while let Some(fr) = changes
            .try_next()
            .await
            .context("watching the feedrollout")?
        {
            match wait::judge(&fr, target) {
                Outcome::Pending => {}
                Outcome::Reached(phase) => return Ok((Exit::Ok, phase)),
                Outcome::Ended(phase) => return Ok((Exit::Ended(phase), phase)),
            }
        }
        bail!("the watch of feedrollout {}/{name} ended", conn.namespace)
    };
    match tokio::time::timeout(timeout, watch).await {
        Ok(result) => {
            let (exit, phase) = result?;
            writeln!(
                term.out,
                "feedrollout {}/{name}: {}",
                conn.namespace,
                phase.as_str()
            )?;
            Ok(exit)
        }
        Err(_) => {
            writeln!(
                term.out,
                "feedrollout {}/{name}: timed out after {}s waiting for {}",
                conn.namespace,
                timeout.as_secs(),
                target.as_str()
            )?;
            Ok(Exit::Timeout)
        }
    }
}

fn lint_files(
    files: &[std::path::PathBuf],
    output: Option<Output>,
    term: &mut Terminal<'_>,
) -> anyhow::Result<Exit> {
    let results: Vec<lint::Linted> = files
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            match read(path) {
                Ok(text) => lint::lint(&file, &text),
                Err(e) => lint::unreadable(&file, &e),
            }
        })
        .collect();
    match output {
        Some(format) => print(term.out, format, &results)?,
        None => term.out.write_all(lint::report(&results).as_bytes())?,
    }
    Ok(if results.iter().all(lint::Linted::valid) {
        Exit::Ok
    } else {
        Exit::Invalid
    })
}

fn read(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
}

fn print(out: &mut dyn Write, format: Output, value: &impl Serialize) -> anyhow::Result<()> {
    match format {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            writeln!(out)?;
        }
        Output::Yaml => out.write_all(serde_yaml::to_string(value)?.as_bytes())?,
    }
    Ok(())
}
