# The two commands: `make demo` (the main job) and `make test` (the test suite).
# Both set up what they need first: Debian packages, .venv with pinned packages,
# colcon build. A re-run with nothing changed takes seconds.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV ?= .venv
export VENV

BUILD_INPUTS := $(shell find src tools/cmake -name package.xml -o -name CMakeLists.txt \
	-o -name setup.py -o -name setup.cfg -o -name '*.msg' -o -name '*.srv' -o -name '*.cmake' \
	2>/dev/null) $(wildcard config/* launch/* rviz/* src/us_bringup/us_bringup/*.py src/us_bringup/scripts/*)
RUN := source env.sh &&

.PHONY: setup demo test lint typecheck unit bench soak clean distclean help

help:
	@echo "make demo   - set up and run the whole graph on the simulator; results in results/demo-*"
	@echo "make test   - set up and run ruff, mypy and the whole test suite"
	@echo "make bench  - set up and run the benchmarks (writes bench/results/*.json)"
	@echo "make soak   - the whole graph for 30 min + fault injection (bench/results/system.json)"
	@echo "make setup  - only set up (.venv, Debian packages, colcon build)"

setup: install/.us-build-stamp

$(VENV)/.us-deps-stamp: requirements/base.txt requirements/ros-wheels.txt requirements/constraints.txt tools/bootstrap.sh
	bash tools/bootstrap.sh
	touch $@

install/.us-build-stamp: $(VENV)/.us-deps-stamp tools/build.sh $(BUILD_INPUTS)
	bash tools/build.sh
	touch $@

demo: setup
	$(RUN) us-demo

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: setup
	$(RUN) mypy

unit: setup
	$(RUN) python -m pytest

test: setup
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) python -m pytest

bench: setup
	$(RUN) python bench/run_all.py

soak: setup
	$(RUN) nice -n 5 python bench/bench_system.py --soak-min 30

clean:
	rm -rf build install log

distclean: clean
	rm -rf $(VENV)
