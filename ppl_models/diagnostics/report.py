"""``diagnostics.md``: the summary table of ``ppl diagnose`` and one verdict per diagnostic."""

from __future__ import annotations

from typing import Any

from ppl_models.diagnostics.weights import BAD_K, GOOD_K


def _na(value: Any) -> bool:
    return isinstance(value, str)


def khat_verdict(k: dict) -> str:
    """One line on whether the importance-sampled log p(x) can be trusted, from the k-hat summary."""
    worst = ", ".join(f"row {w['index']} (k={w['khat']:.2f})" for w in k["worst"])
    if k["bad"] > 0:
        return (f"k-hat > {BAD_K} for {k['bad']:.0%} of points: the IS estimate of log p(x) is unreliable for them "
                f"(the guide misses posterior mass); the worst five: {worst}.")
    if k["ok"] > 0:
        return (f"k-hat is in [{GOOD_K}, {BAD_K}] for {k['ok']:.0%} of points: their IS estimates converge slowly, "
                f"none is unreliable; the worst: {worst}.")
    return f"k-hat < {GOOD_K} for every point: the weights have finite variance and the IS estimate is reliable."


def usage_verdict(site: dict) -> str:
    """One line on the active units and collapsed dimensions of a latent site."""
    if site["active_units"] is None and site["kl_per_dim"] is None:
        return f"`{site['site']}`: {site['note']}."
    parts = []
    if site["active_units"] is not None:
        parts.append(f"{site['active_units']} of {site['dims']} dimensions active (Cov_x E_q[z] > 0.01)")
    if site["collapsed"]:
        shown = ", ".join(map(str, site["collapsed"][:12])) + (" ..." if len(site["collapsed"]) > 12 else "")
        parts.append(f"posterior collapse: {len(site['collapsed'])} dimensions carry < 0.01 nats of KL ({shown})")
    elif site["kl_per_dim"] is not None:
        parts.append("no dimension has collapsed (every KL >= 0.01 nats)")
    if site["note"]:
        parts.append(site["note"])
    return f"`{site['site']}`: " + "; ".join(parts) + "."


def gap_verdict(g: dict) -> str:
    """One line on where the bound loses."""
    bigger = "amortization" if g["amortization_gap"] > g["approximation_gap"] else "approximation"
    return (f"inference gap {g['inference_gap']:.2f} nats = approximation {g['approximation_gap']:.2f} + amortization "
            f"{g['amortization_gap']:.2f}: most of the loss is the {bigger} gap"
            + (" (a better encoder would help most)." if bigger == "amortization" else
               " (a richer guide family would help most)."))


def ais_verdict(a: dict) -> str:
    """One line on whether IS and AIS agree."""
    d = a["is_minus_ais"]
    if a["exact"]:
        return "AIS is exact here (every latent is summed out)."
    if abs(d) < 0.5:
        return f"IS and AIS agree within {abs(d):.2f} nats on {a['n']} points."
    side = "below" if d < 0 else "above"
    return (f"the IS estimate is {abs(d):.2f} nats {side} AIS on {a['n']} points"
            + (": importance sampling with the guide underestimates log p(x)." if d < 0 else
               ": AIS has not converged; raise --ais-steps."))


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| diagnostic | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]]


def markdown(s: dict) -> str:
    """The report as Markdown, from the JSON-ready summary of :func:`~ppl_models.diagnostics.diagnose.diagnose`."""
    trained = f" (strategy {s['strategy']}, objective {s['objective']})" if "strategy" in s else ""
    lines = [f"# Diagnostics: {s['model']} on {s.get('data', 'the given data points')}", "",
             f"{s['n']} points, S={s['samples']} guide draws each{trained}; {s['seconds']} s.", ""]
    rows, verdicts = [], []
    k = s["khat"]
    if _na(k):
        rows.append(("k-hat, ESS, log p(x)", k))
        if "exact" in s.get("log_px", {}):  # a model without latent sites
            rows.append(("log p(x), exact", f"{s['log_px']['exact']:.2f}"))
    else:
        rows += [("k-hat < 0.5 / 0.5–0.7 / > 0.7", f"{k['good']:.1%} / {k['ok']:.1%} / {k['bad']:.1%}"),
                 (f"k-hat > {k['threshold']:.2f} (sample-size rule, S={k['num_samples']})", f"{k['above_threshold']:.1%}"),
                 ("k-hat mean (median, 95%)", f"{k['mean']:.2f} ({k['quantiles']['q50']:.2f}, {k['quantiles']['q95']:.2f})"),
                 ("ESS mean (min) of S", f"{s['ess']['mean']:.1f} ({s['ess']['min']:.1f}) of {s['samples']}"),
                 ("log p(x): IS / PSIS", f"{s['log_px']['is']:.2f} / {s['log_px']['psis']:.2f}"),
                 ("ELBO", f"{s['log_px']['elbo']:.2f}")]
        verdicts.append(f"- **k-hat:** {khat_verdict(k)}")
        e = s["ess"]
        verdicts.append(f"- **ESS:** {e['mean']:.1f} of {s['samples']} draws on average ({e['fraction_of_s']:.1%}), at least "
                        f"{e['min']:.1f}: " + ("the weights are even; the guide covers the posterior well." if e["fraction_of_s"] > 0.5
                                              else "a few draws carry most of the weight for many points."))
        verdicts.append(f"- **PSIS:** the smoothed estimate differs from plain IS by "
                        f"{s['log_px']['psis'] - s['log_px']['is']:+.3f} nats per point.")
    rd = s["rate_distortion"]
    if not _na(rd):
        rows.append(("rate / distortion (nats)", f"{rd['rate']:.2f} / {rd['distortion']:.2f} "
                                                 f"({'closed-form' if rd['rate_analytic'] else 'Monte Carlo'} KL)"))
        verdicts.append(f"- **Rate and distortion:** R = {rd['rate']:.2f} nats sent about each x, D = "
                        f"{rd['distortion']:.2f} nats of reconstruction error; R + D = {-rd['elbo']:.2f} = -ELBO.")
    for site in s["latents"]:
        if site["active_units"] is not None:
            rows.append((f"active units of `{site['site']}`", f"{site['active_units']} / {site['dims']}"))
        verdicts.append(f"- **Latent usage:** {usage_verdict(site)}")
    if "gaps" in s:
        g = s["gaps"]
        if _na(g):
            rows.append(("gaps", g))
        else:
            rows += [("inference gap", f"{g['inference_gap']:.2f}"), ("approximation gap", f"{g['approximation_gap']:.2f}"),
                     ("amortization gap", f"{g['amortization_gap']:.2f}")]
            verdicts.append(f"- **Gaps:** {gap_verdict(g)} q*: {g['stopping_rule']}; "
                            f"{g['fit_capped_batches']} of {len(g['fit_steps'])} batches hit the step cap."
                            + (f" {g['family_note']}." if g["family_note"] else ""))
    if "ais" in s:
        a = s["ais"]
        if _na(a):
            rows.append(("AIS", a))
        else:
            rows.append((f"log p(x): AIS / IS on {a['n']} points",
                         f"{a['log_px_ais']:.2f} / {a['log_px_is_same_points']:.2f} (T={a['steps']}, {a['chains']} chains)"))
            verdicts.append(f"- **AIS:** {ais_verdict(a)}")
            verdicts += _bdmc_lines(a.get("bdmc"))
    if s.get("global_sites"):
        verdicts.append(f"- **Global latents** {s['global_sites']}: their prior and guide terms enter every point's weight.")
    return "\n".join(lines + _table(rows) + ["", "## Verdicts", "", *verdicts]) + "\n"


def _bdmc_lines(bdmc) -> list[str]:
    if bdmc is None:
        return []
    if _na(bdmc):
        return [f"- **BDMC:** {bdmc}"]
    last = bdmc[-1]
    lines = [f"- **BDMC** on simulated data: at T={last['steps']} log p(x) lies in [{last['lower']:.2f}, "
             f"{last['upper']:.2f}] (gap {last['gap']:.2f} nats); the sandwich against T:", "",
             "| T | lower (AIS) | upper (reverse AIS) | gap |", "|---|---|---|---|"]
    lines += [f"| {b['steps']} | {b['lower']:.2f} | {b['upper']:.2f} | {b['gap']:.2f} |" for b in bdmc]
    return lines
