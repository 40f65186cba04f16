"""Packaging for airflow-provider-sophia."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = next(
    line.split('"')[1]
    for line in (HERE / "airflow_provider_sophia" / "__init__.py").read_text().splitlines()
    if line.startswith("__version__")
)

EXTRAS = {
    "postgres": ["apache-airflow-providers-postgres", "psycopg[binary]>=3.1", "adbc-driver-postgresql>=1.0"],
    "mysql": ["apache-airflow-providers-mysql", "pymysql"],
    "sqlite": ["apache-airflow-providers-sqlite"],
    "redis": ["redis>=5"],
    "profiling": ["matplotlib>=3.7", "psutil>=5.9"],
    "openlineage": ["apache-airflow-providers-openlineage"],
}
#: only for `make bench`: the alternatives our benchmarks compare against.
BENCH = ["dlt[parquet,sql_database]>=1.0"]
EXTRAS["dev"] = sorted(
    {dep for deps in EXTRAS.values() for dep in deps}
    | {
        "fakesnow[server]==0.12.1",
        "pytest>=8",
        "pytest-timeout>=2.3",
        "hypothesis>=6.100",
        "ruff>=0.6",
        "mypy>=1.10",
        "types-requests",
        "types-PyYAML",
        "pyyaml>=6",
        "sqlglot>=25",
        "psycopg2-binary>=2.9",
        "psycopg_pool>=3.2",
        "sqlalchemy>=2",
        "playwright>=1.40",
    }
)
EXTRAS["bench"] = BENCH

setup(
    name="airflow-provider-sophia",
    version=VERSION,
    description="Apache Airflow provider for reliable, fast, bounded-memory ELT into Snowflake.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["airflow_provider_sophia", "airflow_provider_sophia.*"]),
    package_data={"airflow_provider_sophia": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "apache-airflow>=3.0",
        "apache-airflow-providers-snowflake>=6.0",
        "apache-airflow-providers-common-sql>=1.20",
        "pandas>=2.0",
        "pyarrow>=15",
        "requests>=2.31",
        "pybreaker>=1.2",
        "aiohttp>=3.9",
        "psutil>=5.9",
    ],
    extras_require=EXTRAS,
    entry_points={
        "apache_airflow_provider": [
            "provider_info = airflow_provider_sophia.get_provider_info:get_provider_info",
        ],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Apache Airflow",
        "Framework :: Apache Airflow :: Provider",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Database",
    ],
)
