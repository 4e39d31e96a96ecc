"""The run's Lightning loggers, with W&B online only when it can be, and each run directory's own W&B run id."""

from __future__ import annotations

import json
import logging
import netrc
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.wandb.ai"
# The WANDB_MODE this process (or the run that started it) set from its own verdict, as opposed to one the user set: a
# later run in the same process (the next point of an in-process sweep, a comparison run) decides again.
DECIDED_ENV = "PACT_WANDB_MODE_DECIDED"
OFFLINE_MODES = ("offline", "disabled", "dryrun")
ID_FILE = "wandb/run_id"  # under the run directory: the id of the W&B run this directory logs to


def netrc_path() -> Path:
    """The netrc file wandb reads: $NETRC, else ~/.netrc, else ~/_netrc (as wandb's own lookup)."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    unix = Path("~/.netrc").expanduser()
    windows = Path("~/_netrc").expanduser()
    return windows if not unix.exists() and windows.exists() else unix


def wandb_credential(host: str) -> str | None:
    """Where a W&B key for ``host`` is found — WANDB_API_KEY, an identity-token file, or the netrc entry `wandb login`
    writes (machine ``host:port`` or ``host``) — or None. Read with the standard library, not through wandb (whose
    reader moved between versions: ``wandb.sdk.lib.wbauth`` exists only from 0.24) nor ``wandb.setup()`` (it would fix
    wandb's settings before the run decides on online or offline). An unreadable netrc raises ValueError."""
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE"
    path = netrc_path()
    try:
        entries = netrc.netrc(str(path))
    except FileNotFoundError:
        return None
    except (netrc.NetrcParseError, OSError) as err:
        raise ValueError(f"{path} cannot be read ({err})") from None
    url = urlsplit(host)
    for machine in dict.fromkeys((url.netloc, url.hostname)):
        entry = entries.authenticators(machine) if machine else None
        if entry and entry[2]:
            return f"{path} (machine {machine})"
    return None


def probe(host: str, timeout: float = 5.0) -> str | None:
    """None when ``host`` answers as a W&B server (its GraphQL endpoint returns a GraphQL JSON body), else why not:
    ``unreachable: …`` (no answer) or ``not W&B: …`` (something else answered: a proxy, a captive portal). Goes through
    the HTTP(S)_PROXY of the environment, as wandb does."""
    request = urllib.request.Request(host.rstrip("/") + "/graphql", data=b'{"query": "{ serverInfo { __typename } }"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, kind, body = response.status, response.headers.get("Content-Type", ""), response.read(65536)
    except urllib.error.HTTPError as err:  # W&B answers a bad or unauthenticated query with a JSON error, too
        status, kind, body = err.code, err.headers.get("Content-Type", ""), err.read(65536)
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections, an invalid URL
        return f"unreachable: {getattr(err, 'reason', err)}"
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("data" in answer or "errors" in answer):
        return None
    return f"not W&B: {host}/graphql answered HTTP {status} {kind or 'without a content type'}, not a GraphQL reply"


def offline_reason(requested: bool | None) -> str | None:
    """Why W&B runs offline, or None to run online: ``logger.wandb.offline`` when set, WANDB_MODE when the user set
    it, no credential for the host, a credential but no answer from the host, or an answer from something that is not
    W&B (a proxy or captive portal, which would otherwise fail the run with wandb's CommError)."""
    if requested is not None:
        return "logger.wandb.offline=true" if requested else None
    mode = user_wandb_mode()
    if mode in OFFLINE_MODES:
        return f"WANDB_MODE={mode} is set"
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
    try:
        found = wandb_credential(host)
    except ValueError as err:
        return f"no W&B credential: {err}; fix it, or run `wandb login` (or set WANDB_API_KEY) to log online"
    if found is None:
        return (f"no W&B credential for {host} (no WANDB_API_KEY, no entry in {netrc_path()}); run `wandb login` "
                "(or set WANDB_API_KEY) to log online")
    failure = probe(host)
    if failure is None:
        return None
    if failure.startswith("unreachable"):
        return (f"a W&B credential was found ({found}) but {host} is {failure} (no network on this node? a proxy "
                "in HTTPS_PROXY?)")
    return (f"a W&B credential was found ({found}) and {host} answers, but it is {failure} (a proxy or captive "
            "portal? set HTTPS_PROXY, or WANDB_BASE_URL to your W&B server)")


def user_wandb_mode() -> str | None:
    """WANDB_MODE as the user set it; None when unset or when it is the verdict a previous run here set."""
    mode = os.environ.get("WANDB_MODE")
    return None if mode is None or mode == os.environ.get(DECIDED_ENV) else mode


def decide_wandb_mode(requested: bool | None) -> str | None:
    """:func:`offline_reason`, with WANDB_MODE set to the verdict (wandb reads it too) and marked as this run's own, so
    that the next run in this process probes again instead of inheriting it."""
    user = user_wandb_mode()
    reason = offline_reason(requested)
    if user not in OFFLINE_MODES:  # the user's own offline WANDB_MODE is left as it is, for every later run to read
        os.environ["WANDB_MODE"] = os.environ[DECIDED_ENV] = "offline" if reason else "online"
    return reason


def wandb_run_id(run_dir: str | Path, resumes: bool) -> str:
    """The W&B run id of the run in ``run_dir``: a fresh start draws a random one and writes it to ``<run dir>/`` +
    :data:`ID_FILE`; a resume from the directory's own checkpoint (``resumes``) reads it back and so continues its W&B
    run. Any other run in the same directory — after ``overwrite=true``, a deleted and rerun point, a reused sweep
    directory — is another W&B run, never appended to the old one. A directory written before the id file existed
    resumes with the id derived from its path, as it was then."""
    file = Path(run_dir) / ID_FILE
    if resumes:
        if file.is_file() and file.read_text().strip():
            return file.read_text().strip()
        from pact_lightning.utils.fingerprint import digest

        return digest(str(Path(run_dir).absolute()))
    from pact_lightning.utils.strategies import process_env

    run_id = secrets.token_hex(8)  # wandb's own ids are 8 characters of [a-z0-9]; 16 hex digits never collide
    if process_env().rank == 0:  # the other ranks log nothing to W&B (and must not replace rank 0's id)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(run_id + "\n")
    return run_id


def loggers(logger_cfg: DictConfig | None, ckpt_path: str | None = None) -> list:
    """One logger per entry of ``logger`` (null entries skipped). ``ckpt_path``: the checkpoint the run resumes from;
    the W&B run continues only when it is the run directory's own (:func:`wandb_run_id`)."""
    out = []
    for name, spec in (logger_cfg or {}).items():
        if spec is None:
            continue
        if name == "wandb":
            reason = decide_wandb_mode(spec.offline)
            save_dir = Path(spec.save_dir)
            save_dir.mkdir(parents=True, exist_ok=True)
            run_id = spec.id
            if run_id is None and not os.environ.get("WANDB_RUN_ID"):  # a W&B sweep agent names the run itself
                own = ckpt_path is not None and Path(ckpt_path).absolute().is_relative_to(save_dir.absolute())
                run_id = wandb_run_id(save_dir, resumes=own)
            with open_dict(spec := spec.copy()):
                spec.id = run_id
            wandb_logger = instantiate(spec, offline=reason is not None)
            wandb_logger._wandb_init.pop("anonymous", None)  # Lightning passes anonymous=None; wandb warns it is gone
            out.append(wandb_logger)
            if reason:  # asked for: said once, at info; decided here: a warning, with the reason
                asked = spec.offline is not None or user_wandb_mode() in OFFLINE_MODES
                log.log(logging.INFO if asked else logging.WARNING, "W&B runs offline: %s. Upload later with: "
                        "wandb sync %s/wandb/offline-run-*", reason, spec.save_dir)
        else:
            out.append(instantiate(spec))
    return out
