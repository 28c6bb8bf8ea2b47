from setuptools import find_packages, setup

package_name = "us_frame_channel"

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
    description="Zero-copy shared-memory frame channel on iceoryx2",
    license="Apache-2.0",
    entry_points={"console_scripts": ["us-channel = us_frame_channel.cli:main"]},
)
