"""The offline end-to-end demo: synthetic data, Ray Train, Ray Data scoring, SQL, report."""

from vip2clip.demo.runner import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
