"""The Celery configuration that makes redelivery safe, per broker transport."""

from __future__ import annotations

from jobs.settings import Settings
from worker.celery_app import make_celery, visible_gpus


def test_acks_late_prefetch_one_and_time_limits_come_from_settings(tmp_path):
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/9", job_soft_time_limit_s=100,
                        job_hard_time_limit_s=130)  # fmt: skip
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (100, 130)
    assert conf.broker_transport_options["visibility_timeout"] > 130
    assert {q.name for q in conf.task_queues} == {"gpu", "cpu", "callbacks"} and conf.task_ignore_result


def test_the_sqlalchemy_broker_gets_engine_options_not_a_visibility_timeout(tmp_path):
    # kombu's SQLAlchemy transport passes its transport options to create_engine.
    conf = make_celery(Settings(data_dir=tmp_path)).conf
    assert conf.broker_url.startswith("sqla+sqlite:///")
    assert "visibility_timeout" not in conf.broker_transport_options


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []
