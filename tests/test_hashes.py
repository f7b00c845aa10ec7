"""The zoo's identities: a network's genome hash is its name in W&B and in every results table, so growing the
genome (new ops, new fields) must leave the hashes of the networks that existed before unchanged."""

from __future__ import annotations

import pytest

from nasplay.space.zoo import get_genome

# Recorded from the code before the genome grew by the decade after the ten (issue 14).
PINNED = {
    "lenet5": "55c1919f7be4", "lenet5_common": "c7a1dd7ae7c7", "alexnet": "b40bc00a875b",
    "alexnet_2012": "3e8b62208e10", "vgg11": "62a2fcdb5356", "vgg13": "7c702bbe75f6", "vgg16": "ddb2f002f1eb",
    "vgg19": "9b181621bc39", "inception_v1": "06dc5e1eeb93", "inception_v1_2014": "ce888daeaada",
    "inception_v3": "38d95da1ee62", "resnet18": "0a61c7942925", "resnet34": "954e5ebdc86f",
    "resnet50": "8adde4838072", "resnet101": "65eecdc34f07", "resnet152": "0f1598fae9d2",
    "resnet50_v1": "e68b791aade1", "inception_v4": "396340b514bc", "inception_resnet_v2": "c23ce332fd5e",
    "resnext50_32x4d": "3f80476aac8b", "resnext101_32x8d": "d87435e4210d", "wide_resnet50_2": "4024bb37db29",
    "xception": "821c0497e5a5",
}


@pytest.mark.parametrize("name", list(PINNED))
def test_existing_hashes_are_unchanged(name: str) -> None:
    assert get_genome(name).hash == PINNED[name]
