from setuptools import find_packages, setup

package_name = "us_grpc_bridge"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    # the .proto ships with the package; stubs are generated from it at first import
    package_data={package_name: ["proto/ultrasound/v1/*.proto"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        (
            "share/" + package_name + "/proto/ultrasound/v1",
            ["us_grpc_bridge/proto/ultrasound/v1/ultrasound.proto"],
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="us-ros2 developers",
    maintainer_email="dev@example.org",
    description=("gRPC API for remote clients: streaming, control, authentication, compression."),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "grpc_bridge_node = us_grpc_bridge.node:main",
            "us-client = us_grpc_bridge.client:main",
        ]
    },
)
