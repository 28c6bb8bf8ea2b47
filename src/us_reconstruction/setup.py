from setuptools import find_packages, setup

package_name = "us_reconstruction"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="us-ros2 developers",
    maintainer_email="dev@example.org",
    description=(
        "Probe poses from TF, calibration, freehand 3D compounding, thyroid surface and volume in mL, RViz output and export."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "us-reconstruct = us_reconstruction.offline:main",
            "us-temporal-calibration = us_reconstruction.temporal_calibration:main",
            "reconstruction_node = us_reconstruction.node:main",
        ]
    },
)
