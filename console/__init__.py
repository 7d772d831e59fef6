"""Key Ceremony Console: quorum-approved key ceremonies for JWT signing keys on a PKCS#11 HSM.

Importing the package imports nothing heavy; the faces (`cli`, `tui`) pull in what they need.
"""

__version__ = "0.1.0"
