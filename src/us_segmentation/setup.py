from glob import glob

from setuptools import find_packages, setup

package_name = "us_segmentation"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # shipped models: share/us_segmentation/models/<name>/{model.pt, model.onnx, card, metrics}
        *[
            ("share/" + package_name + "/" + d, sorted(glob(d + "/*")))
            for d in sorted(glob("models/*"))
        ],
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="us-ros2 developers",
    maintainer_email="dev@example.org",
    description=(
        "AI (PyTorch) thyroid segmentation of frames from shared memory, masks written back to shared memory."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "us-seg-train = us_segmentation.train:main",
            "us-seg-evaluate = us_segmentation.evaluate:main",
            "segmentation_node = us_segmentation.node:main",
        ]
    },
)
