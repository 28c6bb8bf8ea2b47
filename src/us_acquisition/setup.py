from setuptools import find_packages, setup

package_name = "us_acquisition"

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
        "Acquisition: DeckLink / UVC grabbers, recordings and the built-in tracked-probe simulator, written once into the shared-memory frame channel."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "acquisition_node = us_acquisition.node:main",
            "recorder_node = us_acquisition.recorder_node:main",
        ]
    },
)
