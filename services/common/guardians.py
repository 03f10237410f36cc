"""How a guardian or carer is related to the child (quan hệ với trẻ em): one list for the registry, which records
the guardians, and the cases service, which names the guardian who is the alleged perpetrator (on the case, never
in the registry)."""

from enum import StrEnum


class Relationship(StrEnum):
    """How a guardian or carer is related to the child (quan hệ với trẻ em). A case names which guardian is the
    alleged perpetrator by the guardian's id; the registry never records it."""

    MOTHER = "mother"
    FATHER = "father"
    STEP_MOTHER = "step_mother"
    STEP_FATHER = "step_father"
    ADOPTIVE_PARENT = "adoptive_parent"
    PATERNAL_GRANDFATHER = "paternal_grandfather"
    PATERNAL_GRANDMOTHER = "paternal_grandmother"
    MATERNAL_GRANDFATHER = "maternal_grandfather"
    MATERNAL_GRANDMOTHER = "maternal_grandmother"
    GRANDPARENT = "grandparent"
    SIBLING = "sibling"
    AUNT_UNCLE = "aunt_uncle"
    RELATIVE = "relative"
    FOSTER_PARENT = "foster_parent"
    GUARDIAN = "guardian"
    OTHER = "other"
