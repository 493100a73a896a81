"""RUN/figures/curves.png: every training run draws its metrics, resume redraws them, a failure only warns."""

from PIL import Image

from ppl_models.train import RunDir, fit
from ppl_models.train.curves import plot_curves, save_curves
from ppl_models.train.metrics import MetricsLog


def open_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_training_writes_the_curves_and_resume_redraws_them(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=1), digits, progress=False)
    curves = run.figures / "curves.png"
    width, height = open_png(curves)
    assert 800 <= width <= 2000 and 300 <= height <= 1000 and width > height  # two panels side by side
    assert not list(run.figures.glob("*.tmp"))
    before = curves.read_bytes()

    fit(run, tiny_run_config(epochs=2), digits, resume=True, progress=False)
    open_png(curves)
    assert curves.read_bytes() != before  # redrawn with the resumed epoch's point


def test_the_figure_has_two_panels_in_nats_per_point(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=2), digits, progress=False)
    rows = MetricsLog.read(run.metrics_path)
    by_step, by_time = plot_curves(rows).axes
    assert by_step.get_xlabel() == "optimizer step" and "wall time" in by_time.get_xlabel()
    assert "nats per data point" in by_step.get_ylabel()
    train, valid = by_time.get_lines()
    assert list(train.get_ydata()) == [-float(r["train_loss"]) for r in rows]
    assert list(valid.get_xdata()) == [float(r["elapsed_s"]) for r in rows]


def test_metrics_without_rows_draw_nothing(tmp_path):
    MetricsLog(tmp_path / "metrics.csv")  # the header only
    assert save_curves(tmp_path / "metrics.csv", tmp_path / "figures" / "curves.png") is None
    assert not (tmp_path / "figures").exists()


def test_an_unwritable_figure_warns_and_keeps_the_run(tmp_path, digits, tiny_run_config, capsys):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.figures.write_text("a file where the figures folder should be")
    model = fit(run, tiny_run_config(epochs=1), digits, progress=False)
    assert not model.training and len(MetricsLog.read(run.metrics_path)) == 1
    assert "warning: could not write" in capsys.readouterr().out


def test_an_iwae_run_draws_its_validation_iwae_bound_too():
    rows = [{"epoch": str(e), "step": str(10 * e), "train_loss": str(120.0 - e), "valid_elbo": str(-118.0 + e),
             "valid_iwae": str(-116.0 + e), "epoch_time_s": "1.0", "elapsed_s": str(float(e))} for e in (1, 2)]
    by_step, _ = plot_curves(rows).axes
    train, valid, iwae = by_step.get_lines()
    assert list(iwae.get_ydata()) == [-115.0, -114.0] and "IWAE" in iwae.get_label()
    assert len(plot_curves([{**r, "valid_iwae": ""} for r in rows]).axes[0].get_lines()) == 2  # older rows
