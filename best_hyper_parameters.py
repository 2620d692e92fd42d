"""Best hyper-parameters per dataset, model and optimizer, read by training_example.py.

Generated and merged by export_best.py (with training.render_best_hyper_parameters): it
rewrites this whole file in this exact layout. It may be edited by hand; keep it plain data.

BEST_HYPER_PARAMETERS[dataset][model][optimizer] holds every keyword argument passed to the
optimizer. The CIFAR and SVHN entries are Table 4 (Appendix E) of Roburin, de Mont-Marin et al.,
"Spherical Perspective on Learning with Batch Norm" (arXiv:2006.13382), and the reference
best_hyper_parameters.py: beta1 0.9, eps 1e-8, momentum 0.9; lr 0.1 (sgd, sgdmrt), 1e-2
(adamg), 1e-3 (adam, adamw, adams, adamsrt). cifar10/resnet20/adamw has weight decay 1e-2
because the reference file gave none there, so torch's AdamW default applied. The digits
entries (the offline default dataset, not in the paper) copy cifar10/resnet20, and so do those
of the worked example of a dataset and model of one's own, named by import path
(examples/digits_mobilenet.py).

PROVENANCE["dataset/model/optimizer"] records the search that produced an entry (study,
trial number, value, date); entries without one come from the paper.
"""

BEST_HYPER_PARAMETERS = {
    "cifar10": {
        "resnet18": {
            "adam": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 1.5625e-05,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 6.25e-05,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
        },
        "resnet20": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.01,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 3.125e-05,
            },
        },
        "vgg16": {
            "adam": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 3.125e-05,
            },
            "adamg": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 3.125e-05,
            },
            "adamsrt": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 1.5625e-05,
            },
            "adamw": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.00025,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 6.25e-05,
            },
        },
    },
    "cifar100": {
        "resnet18": {
            "adam": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.000125,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.000125,
            },
            "adamsrt": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.000125,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
        },
        "vgg16": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 6.25e-05,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 6.25e-05,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 1.5625e-05,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.000125,
            },
        },
    },
    "digits": {
        "resnet18": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.01,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 3.125e-05,
            },
        },
        "resnet20": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.01,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 3.125e-05,
            },
        },
    },
    "examples.digits_mobilenet:digits": {
        "examples.digits_mobilenet:mobilenet": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0005,
            },
            "adamsrt": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.01,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.00025,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 3.125e-05,
            },
        },
    },
    "svhn": {
        "resnet18": {
            "adam": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 3.125e-05,
            },
            "adamsrt": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamw": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
        },
        "vgg16": {
            "adam": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.0,
            },
            "adamg": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.01,
                "weight_decay": 0.0005,
            },
            "adams": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 7.8125e-06,
            },
            "adamsrt": {
                "betas": (0.9, 0.999),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 0.00025,
            },
            "adamw": {
                "betas": (0.9, 0.99),
                "eps": 1e-08,
                "lr": 0.001,
                "weight_decay": 3.125e-05,
            },
            "sgd": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 0.0005,
            },
            "sgdmrt": {
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 3.125e-05,
            },
        },
    },
}

PROVENANCE = {}
