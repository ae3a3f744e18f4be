"""The metadata tables. Every column is listed here; there is nothing else."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, CheckConstraint, Date, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATES = ("received", "exported", "purged")


class Base(DeclarativeBase):
    pass


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        CheckConstraint("state IN ('received', 'exported', 'purged')", name="submission_state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 128 random bits, hex
    received_on: Mapped[date] = mapped_column(Date)  # the day only, never a time
    size: Mapped[int] = mapped_column(BigInteger)  # padded ciphertext bytes
    keyring_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="received")


class KeyringState(Base):
    """One row: the highest keyring version this deployment ever accepted."""

    __tablename__ = "keyring_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    highest_version: Mapped[int] = mapped_column(Integer, default=0)


UPLOAD_STATES = ("open", "finishing", "finished")


class Upload(Base):
    """A resumable upload of browser-made ciphertext, until it is filed or expires.

    Its id is a capability (192 random bits) and is never a submission id.
    Expiry is kept to the hour, not the second.
    """

    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint("state IN ('open', 'finishing', 'finished')", name="upload_state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    keyring_version: Mapped[int] = mapped_column(Integer)
    expires_hour: Mapped[int] = mapped_column(Integer)  # hours since the epoch, UTC
    state: Mapped[str] = mapped_column(String(16), default="open")
