"""What ``spe risk report`` shows: rich tables on the terminal, and the PNG or HTML report it writes.

Both read the command's JSON document, so the terminal, the files and ``--json`` show the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from portfolio_engine.cli._common import out

_COLORS = {"critical": "bold red", "breach": "red", "warning": "yellow", "ok": "green", "not measured": "dim"}
_DRAWDOWNS = ("0.05", "0.1", "0.2")


def report_tables(document: dict[str, Any]) -> dict[str, Any]:
    """The report's tables (DataFrames) and chart marks, from the command's JSON document."""
    import pandas as pd

    from portfolio_engine.reports.risk import fan_frame, hedge_table, limits_table, stress_table

    mc, limits, hedge = document["monte_carlo"], document["limits"], document["hedge"]
    horizon = mc["horizon_days"]
    return {
        "bands": fan_frame(mc["fan_chart"]["levels"], mc["fan_chart"]["values"]),
        "stress": stress_table(document["stress"]["scenarios"], document["stress"]["shocks"]),
        "tails": pd.DataFrame(document["var_cvar"]),
        "limits": limits_table(limits["limits"], limits["measured"], limits["breaches"], limits.get("unmeasured")),
        "hedge": None if hedge is None else hedge_table(hedge["proposals"], (hedge["chosen"] or {}).get("kind")),
        "var_marks": {f"VaR {lv:.0%} ({horizon}d)": mc["figures"][f"var_{lv:g}"] for lv in mc["levels"][-2:]},
        # The drawdown limit is the loss the reverse stress looks for: the stress chart marks it.
        "loss_limit": limits["limits"].get("max_drawdown"),
    }


def write_report(document: dict[str, Any], path: Path) -> None:
    """Write the fan chart and stress bars (``.png``) or the whole report (``.html``) to ``path``."""
    from portfolio_engine.reports.risk import risk_figure_png, risk_report_html

    tables = report_tables(document)
    mc, target = document["monte_carlo"], document["optimization"]
    title = f"Portfolio {document['portfolio']} on {document['as_of']}: risk over {mc['horizon_days']} trading days"
    marks = {"var_marks": tables["var_marks"], "loss_limit": tables["loss_limit"]}
    if path.suffix.lower() == ".png":
        path.write_bytes(risk_figure_png(tables["bands"], tables["stress"], title=title, **marks))
        return
    figures, hedge = mc["figures"], document["hedge"]
    details = {
        "weights": f"{target['method']} ({document['weights_source']}): "
        + ", ".join(f"{s} {w:.1%}" for s, w in sorted(target["target_weights"].items(), key=lambda x: -x[1])),
        "regime": target["regime"] or "none",
        "Monte Carlo": (
            f"{mc['n_paths']:,} paths x {mc['horizon_days']} days, {mc['innovations']} innovations, regimes "
            f"{', '.join(mc['states'])}, seed {mc['seed']}, {mc['shards']} shards"
        ),
        **{f"P(drawdown > {float(t):.0%})": f"{figures[f'p_drawdown_gt_{t}']:.2%}" for t in _DRAWDOWNS},
        "stored": document["report_key"],
    }
    page = risk_report_html(
        tables["bands"],
        tables["stress"],
        title=title,
        tails=tables["tails"],
        limits=tables["limits"],
        details=details,
        hedge=tables["hedge"],
        hedge_message=None if hedge is None else hedge["message"],
        **marks,
    )
    path.write_text(page, encoding="utf-8")


def _pct(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.2%}"


def _num(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.4g}"


def _ratio(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.0%}"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def print_report(document: dict[str, Any]) -> None:
    """The report on the terminal: headline, VaR/CVaR, drawdowns, stress, limits, hedge, alerts."""
    tables, mc, target = report_tables(document), document["monte_carlo"], document["optimization"]
    out.print(
        f"[bold]Portfolio {document['portfolio']}[/] on {document['as_of']} (spec: {document['spec_source']}; "
        f"weights: {target['method']}, {document['weights_source']}; regime: {target['regime'] or 'none'})"
    )
    weights = sorted(target["target_weights"].items(), key=lambda item: -item[1])
    out.print("Weights: " + ", ".join(f"{symbol} {weight:.1%}" for symbol, weight in weights))
    levels = mc["levels"]
    tails = [
        [row["method"], f"{row['horizon_days']}d"]
        + [_pct(row[f"{m}_{lv:g}"]) for lv in levels for m in ("var", "cvar")]
        for row in tables["tails"].to_dict("records")
    ]
    title = f"VaR / CVaR (Monte Carlo: {mc['n_paths']:,} paths, {mc['innovations']}, regimes {', '.join(mc['states'])})"
    out.print(_table(title, ["method", "horizon"] + [f"{m} {lv:.0%}" for lv in levels for m in ("VaR", "CVaR")], tails))
    figures, hist = mc["figures"], document["historical"]["figures"]
    drawdowns = ", ".join(f"> {float(t):.0%}: {figures[f'p_drawdown_gt_{t}']:.1%}" for t in _DRAWDOWNS)
    out.print(f"P(drawdown within {mc['horizon_days']} days) {drawdowns} (seed {mc['seed']}, {mc['shards']} shards)")
    beta = f", beta {hist['beta']:.2f}" if "beta" in hist else ""
    out.print(
        f"Historical, last {document['historical']['days']} days: volatility {_pct(hist.get('volatility'))}, "
        f"max drawdown {_pct(hist.get('max_drawdown'))}, current drawdown {_pct(hist.get('current_drawdown'))}{beta}"
    )
    stress = [
        [row["scenario"], row["window"].replace(" to ", "..") or "shock", _pct(row["loss"]),
         _pct(row["worst_day_return"]), _pct(row["max_drawdown"])]
        for row in tables["stress"].to_dict("records")
    ]  # fmt: skip
    columns = ["scenario", "window", "loss", "worst day", "max drawdown"]
    out.print(_table("Stress (loss; negative is a gain)", columns, stress))
    reverse = document["stress"]["reverse"]
    if reverse:
        out.print(f"Reverse stress: a market move of {_pct(reverse['shock'])} loses {_pct(reverse['limit'])}")
    limits = [
        [row["limit"], _num(row["threshold"]), _num(row["measured"]), _ratio(row["ratio"]),
         f"[{_COLORS[row['severity']]}]{row['severity']}[/]"]
        for row in tables["limits"].to_dict("records")
    ]  # fmt: skip
    out.print(_table("Limits", ["limit", "limit value", "measured", "of limit", "severity"], limits))
    for name, reason in (document["limits"].get("unmeasured") or {}).items():
        out.print(f"[dim]{escape(name)} not measured: {escape(reason)}[/]")
    hedge = document["hedge"]
    if hedge is not None:
        out.print(f"[bold]Hedge proposal[/] (never executed): {escape(hedge['message'])}")
        proposals = [
            [str(row["kind"]), "yes" if row["feasible"] else "no", _num(row["parameter"]), _pct(row["turnover"]),
             "*" if row["chosen"] else ""]
            for row in tables["hedge"].to_dict("records")
        ]  # fmt: skip
        out.print(_table("Hedge proposals", ["kind", "feasible", "parameter", "turnover", "chosen"], proposals))
    alerts = document["alerts"]
    if alerts is not None:
        out.print(f"Alerts: {alerts['sent']} sent, {alerts['suppressed']} suppressed, {alerts['failed']} failed")
    out.print(f"Stored: {document['report_key']}")
    if document["chart"]:
        out.print(f"Report written to {document['chart']}")
