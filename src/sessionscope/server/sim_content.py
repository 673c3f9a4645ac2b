"""What the simulated agents say and make: titles, markdown messages, tool inputs and outputs,
artifacts (including a real PNG), action previews and client tool-call arguments.

Every function takes the caller's ``random.Random`` so that one seed gives one story; nothing here
touches the global ``random`` module or the clock.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# Cast
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persona:
    agent_id: str
    titles: tuple[str, ...]
    tags: tuple[str, ...]
    tools: tuple[str, ...]


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "support-triage",
        (
            "Refund request from {customer}",
            "Login loop reported by {customer}",
            "Escalation: invoice {invoice} disputed",
            "Password reset for {customer}",
        ),
        ("support", "tier-1", "email"),
        ("search_tickets", "lookup_customer", "draft_reply"),
    ),
    Persona(
        "code-reviewer",
        (
            "Review PR #{pr}: retry budget for uploads",
            "Review PR #{pr}: migrate settings to TOML",
            "Investigate flaky test in {module}",
            "Refactor {module} error handling",
        ),
        ("code", "review", "python"),
        ("read_file", "run_tests", "grep_repo"),
    ),
    Persona(
        "data-pipeline",
        (
            "Nightly ETL for {dataset}",
            "Backfill {dataset} since {date}",
            "Schema drift detected in {dataset}",
        ),
        ("etl", "warehouse", "batch"),
        ("query_warehouse", "validate_schema", "load_partition"),
    ),
    Persona(
        "release-bot",
        (
            "Release v{version} to staging",
            "Hotfix v{version} rollout",
            "Rollback v{version} in eu-west-1",
        ),
        ("release", "ops", "prod"),
        ("build_image", "run_migrations", "check_health"),
    ),
    Persona(
        "research-assistant",
        (
            "Summarise papers on {topic}",
            "Competitive scan: {topic}",
            "Literature notes: {topic}",
        ),
        ("research", "summaries"),
        ("web_search", "fetch_url", "extract_citations"),
    ),
    Persona(
        "billing-reconciler",
        (
            "Reconcile invoices for {date}",
            "Chargeback review {invoice}",
            "Usage anomaly for {customer}",
        ),
        ("billing", "finance"),
        ("query_ledger", "match_payments", "flag_anomaly"),
    ),
)

MODELS = ("claude-sonnet-4", "gpt-4.1", "llama-3.3-70b", "mistral-large", "gemini-2.5-pro")
CUSTOMERS = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Hooli", "Stark Industries")
MODULES = ("uploads.py", "auth/session.py", "billing/ledger.py", "api/routes.py", "cli.py")
DATASETS = ("orders", "page_views", "invoices", "inventory_snapshots", "support_tickets")
TOPICS = ("retrieval-augmented generation", "agent evaluation", "LLM tool use", "prompt caching")
PEOPLE = ("ops@example.com", "alice@example.com", "finance@example.com", "oncall@example.com")

#: Text that a careless console would interpret: Rich/Textual markup, an action link, ANSI
#: escapes, control characters. The demo shows these so that safe rendering is exercised.
HOSTILE_SNIPPETS = (
    "[bold]not bold[/bold]",
    "[@click=app.quit]click me[/]",
    "\x1b[31mred alert\x1b[0m",
    "[link=https://example.com]not a link[/link]",
    "\x1b]0;pwned title\x07",
    "tab\there, bell\x07, backspace\x08",
    "[red on white]shouting[/]",
)


def fill(template: str, rng: random.Random) -> str:
    return template.format(
        customer=rng.choice(CUSTOMERS),
        invoice=f"INV-{rng.randint(10000, 99999)}",
        pr=rng.randint(100, 9999),
        module=rng.choice(MODULES),
        dataset=rng.choice(DATASETS),
        date=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        version=f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        topic=rng.choice(TOPICS),
    )


def hostile(rng: random.Random) -> str:
    choice = rng.randrange(len(HOSTILE_SNIPPETS) + 1)
    if choice == len(HOSTILE_SNIPPETS):
        # One very long line: a console must wrap or truncate it, not choke on it.
        return "very long line: " + " ".join(
            f"word{index}" for index in range(rng.randint(300, 600))
        )
    return HOSTILE_SNIPPETS[choice]


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

_USER_PROMPTS = (
    "Can you look into this? {title}",
    "Please handle: {title}. Keep it short.",
    "{title} — what do you need from me?",
    "Start on **{title}** and tell me when something needs my approval.",
)

_CODE_SNIPPETS = (
    (
        "python",
        "def retry(fn, attempts=3):\n"
        "    for attempt in range(attempts):\n"
        "        try:\n"
        "            return fn()\n"
        "        except TimeoutError:\n"
        "            if attempt == attempts - 1:\n"
        "                raise\n",
    ),
    (
        "sql",
        "SELECT customer_id, SUM(amount) AS total\n"
        "FROM invoices\n"
        "WHERE paid_at IS NULL\n"
        "GROUP BY customer_id\n"
        "ORDER BY total DESC\n"
        "LIMIT 20;\n",
    ),
    ("bash", "kubectl rollout status deploy/api -n prod --timeout=120s\n"),
    (
        "json",
        '{\n  "status": "degraded",\n  "p95_ms": 812,\n  "error_rate": 0.031\n}\n',
    ),
)

_AGENT_OPENERS = (
    "I looked at {subject}.",
    "Here is what I found about {subject}.",
    "Quick update on {subject}:",
    "Done with the first pass over {subject}.",
)

_AGENT_BULLETS = (
    "the error rate doubled after the last deploy",
    "three records are missing a customer id",
    "the retry loop never backs off",
    "the customer was charged twice on the same day",
    "tests pass locally but time out in CI",
    "the upstream API returns 429 under load",
    "two invoices share one payment reference",
)


def user_prompt(rng: random.Random, title: str) -> str:
    return rng.choice(_USER_PROMPTS).format(title=title)


def user_followup(rng: random.Random) -> str:
    return rng.choice(
        (
            "Thanks. Can you also check last week's data?",
            "Go ahead, but don't touch production without asking me.",
            "What's the root cause?",
            "Please attach the report when you're done.",
            "ok",
        )
    )


def agent_message(rng: random.Random, subject: str, *, hostile_content: bool = False) -> str:
    """Markdown with a list and usually a fenced code block."""
    lines = [rng.choice(_AGENT_OPENERS).format(subject=f"**{subject}**"), ""]
    for bullet in rng.sample(_AGENT_BULLETS, rng.randint(1, 3)):
        lines.append(f"- {bullet}")
    if rng.random() < 0.7:
        language, code = rng.choice(_CODE_SNIPPETS)
        lines += ["", f"```{language}", code.rstrip("\n"), "```"]
    if hostile_content:
        lines += ["", "The log line in question was:", "", hostile(rng)]
    lines += ["", rng.choice(("Next I'll verify the fix.", "Shall I proceed?", "More soon."))]
    return "\n".join(lines)


def thinking(rng: random.Random, subject: str) -> str:
    return rng.choice(
        (
            f"The user wants {subject}. I should gather context before acting.",
            "Two hypotheses: a config change or a data issue. Check the deploy log first.",
            "That tool output contradicts the earlier query; re-run with a narrower range.",
            "This needs an irreversible step, so I must ask for confirmation.",
        )
    )


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------


def tool_input(rng: random.Random, tool: str) -> dict[str, Any]:
    if tool in ("search_tickets", "web_search", "grep_repo"):
        return {"query": rng.choice(("timeout", "refund", "429", "duplicate charge", "RAG eval"))}
    if tool in ("read_file", "fetch_url"):
        return (
            {"path": rng.choice(MODULES)}
            if tool == "read_file"
            else {"url": f"https://example.com/docs/{rng.randint(1, 500)}"}
        )
    if tool in ("query_warehouse", "query_ledger"):
        return {"sql": "SELECT count(*) FROM " + rng.choice(DATASETS), "timeout_s": 30}
    return {"target": rng.choice(CUSTOMERS + DATASETS), "dry_run": rng.random() < 0.5}


def tool_output(rng: random.Random, tool: str) -> dict[str, Any]:
    if tool in ("query_warehouse", "query_ledger"):
        return {"rows": rng.randint(0, 250_000), "elapsed_ms": rng.randint(5, 9000)}
    if tool in ("search_tickets", "web_search", "grep_repo"):
        return {"hits": [f"result-{rng.randint(1, 999)}" for _ in range(rng.randint(0, 4))]}
    if tool == "run_tests":
        failed = rng.randint(0, 3)
        return {"passed": rng.randint(50, 400), "failed": failed, "ok": failed == 0}
    return {"ok": True, "summary": rng.choice(_AGENT_BULLETS)}


def tool_error(rng: random.Random, tool: str) -> str:
    return rng.choice(
        (
            f"{tool}: upstream returned 503 Service Unavailable",
            f"{tool}: timed out after 30s",
            f"{tool}: permission denied",
            f"{tool}: invalid argument 'since' (expected ISO date)",
        )
    )


# ---------------------------------------------------------------------------------------------
# Confirmations and client tool calls
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionProposal:
    tool: str
    preview: dict[str, Any]
    destructive: bool
    expires_in_seconds: float


def action_proposal(rng: random.Random, subject: str) -> ActionProposal:
    kind = rng.choice(("send_email", "run_shell", "deploy", "delete_records", "refund", "post"))
    preview: dict[str, Any]
    destructive = False
    if kind == "send_email":
        preview = {
            "to": rng.choice(PEOPLE),
            "subject": f"Re: {subject}",
            "body": rng.choice(
                (
                    "Hi,\n\nWe found the cause and deployed a fix. Sorry for the trouble.\n",
                    "Hello,\n\nYour refund was approved and will arrive in 3-5 days.\n",
                    "Team,\n\nNightly load finished with warnings; details attached.\n",
                )
            ),
        }
    elif kind == "run_shell":
        preview = {
            "command": rng.choice(
                (
                    "rm -rf /var/cache/app/*",
                    "kubectl delete pod -l app=worker -n prod",
                    "psql -c 'VACUUM FULL invoices'",
                    "git push --force origin main",
                )
            ),
            "cwd": "/srv/app",
        }
        destructive = rng.random() < 0.7
    elif kind == "deploy":
        preview = {
            "service": rng.choice(("api", "worker", "billing")),
            "version": f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "environment": rng.choice(("staging", "production")),
        }
        destructive = preview["environment"] == "production"
    elif kind == "delete_records":
        preview = {
            "table": rng.choice(DATASETS),
            "where": f"created_at < '2025-{rng.randint(1, 12):02d}-01'",
            "estimated_rows": rng.randint(10, 50_000),
        }
        destructive = True
    elif kind == "refund":
        preview = {
            "customer": rng.choice(CUSTOMERS),
            "amount": round(rng.uniform(5, 900), 2),
            "currency": "EUR",
        }
    else:
        preview = {"channel": "#incidents", "text": f"Status update: {subject}"}
    return ActionProposal(kind, preview, destructive, rng.uniform(30.0, 600.0))


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    tool: str
    arguments: list[dict[str, Any]] = field(default_factory=list)


def client_tool_call(rng: random.Random) -> ToolCallRequest:
    kind = rng.choice(("github_api", "open_browser", "read_local_file", "call_internal_api"))
    if kind == "github_api":
        return ToolCallRequest(
            kind,
            [
                {"name": "repo", "value": "acme/backend", "secret": False},
                {"name": "endpoint", "value": f"/pulls/{rng.randint(1, 999)}", "secret": False},
                {"name": "token", "value": f"ghp_{rng.getrandbits(128):032x}", "secret": True},
            ],
        )
    if kind == "call_internal_api":
        return ToolCallRequest(
            kind,
            [
                {"name": "url", "value": "https://internal.example.com/v2/usage", "secret": False},
                {"name": "api_key", "value": f"sk_live_{rng.getrandbits(96):024x}", "secret": True},
            ],
        )
    if kind == "open_browser":
        return ToolCallRequest(
            kind, [{"name": "url", "value": f"https://example.com/{rng.randint(1, 99)}"}]
        )
    return ToolCallRequest(
        kind, [{"name": "path", "value": f"~/reports/{rng.choice(DATASETS)}.csv"}]
    )


# ---------------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(rng: random.Random, width: int = 48, height: int = 32) -> bytes:
    """A small, valid RGB PNG: a seeded gradient with a bar chart drawn on it."""
    base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    bars = [rng.randint(2, height - 2) for _ in range(width // 6)]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: None
        for x in range(width):
            bar = bars[min(x // 6, len(bars) - 1)]
            if x % 6 != 5 and height - y <= bar:
                rows += bytes((30, 120 + (x * 2) % 100, 200))
            else:
                rows += bytes(((base[0] + x * 3) % 256, (base[1] + y * 5) % 256, base[2]))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    name: str
    mime_type: str
    data: bytes
    description: str


ARTIFACT_KINDS = ("text", "markdown", "json", "python", "png", "binary")


def artifact(rng: random.Random, subject: str, kind: str | None = None) -> ArtifactFile:
    kind = kind or rng.choice(ARTIFACT_KINDS)
    stem = rng.choice(("report", "summary", "findings", "output", "notes"))
    if kind == "text":
        lines = [f"{subject}", "=" * min(len(subject), 60), ""]
        lines += [
            f"{index:03d} {rng.choice(_AGENT_BULLETS)}" for index in range(rng.randint(5, 40))
        ]
        return ArtifactFile(f"{stem}.txt", "text/plain", "\n".join(lines).encode(), "Plain log")
    if kind == "markdown":
        body = (
            f"# {subject}\n\n" + agent_message(rng, subject) + "\n\n| metric | value |\n|---|---|\n"
        )
        body += "".join(f"| m{index} | {rng.randint(0, 999)} |\n" for index in range(5))
        return ArtifactFile(f"{stem}.md", "text/markdown", body.encode(), "Written report")
    if kind == "json":
        document = {
            "subject": subject,
            "generated_by": "sessionscope simulator",
            "items": [
                {"id": index, "score": round(rng.random(), 4), "label": rng.choice(DATASETS)}
                for index in range(rng.randint(3, 25))
            ],
        }
        data = json.dumps(document, indent=2).encode()
        return ArtifactFile(f"{stem}.json", "application/json", data, "Structured results")
    if kind == "python":
        _, code = _CODE_SNIPPETS[0]
        source = f'"""Generated for: {subject}."""\n\n\n{code}\n\nprint(retry(lambda: 42))\n'
        return ArtifactFile("fix.py", "text/x-python", source.encode(), "Proposed patch")
    if kind == "png":
        return ArtifactFile("chart.png", "image/png", make_png(rng), "Chart of the results")
    data = rng.randbytes(rng.randint(256, 4096))
    return ArtifactFile(f"{stem}.bin", "application/octet-stream", data, "Raw dump")
