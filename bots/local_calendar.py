"""The embedded calendar, used when no GoHighLevel token is configured: the tenant's business
hours and bookings held in memory (lost on restart; enough for a demo or a single office)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bots.business_hours import BusinessHours
from bots.calendar import Appointment, Calendar, CalendarError, Contact, Slot, SlotTaken


@dataclass(frozen=True, slots=True, kw_only=True)
class Opportunity:
    id: str
    contact_id: str
    name: str
    value: float | None
    stage: str | None


class LocalCalendar(Calendar):
    """One tenant's calendar in memory; what the GoHighLevel calendar does, minus the CRM."""

    def __init__(self, hours: BusinessHours, *, calendar_id: str = "local") -> None:
        self.hours = hours
        self.calendar_id = calendar_id
        self.contacts: dict[str, Contact] = {}
        self.appointments: list[Appointment] = []
        self.notes: dict[str, list[str]] = {}
        self.opportunities: list[Opportunity] = []
        self._ids = itertools.count(1)
        # Held from the free check to the insert, so two calls never book the same slot even
        # if persisting a booking ever awaits in between.
        self._booking = asyncio.Lock()

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    async def upsert_contact(
        self, *, name: str, phone: str, email: str | None = None, timezone: str | None = None
    ) -> Contact:
        """Matched by phone, then by email (case-insensitive): the phone is what a caller always has."""
        existing = self._find(phone, email)
        contact = Contact(
            id=existing.id if existing else self._new_id("contact"),
            name=name or (existing.name if existing else ""),
            phone=phone,
            email=email or (existing.email if existing else None),
            timezone=timezone or (existing.timezone if existing else None),
        )
        self.contacts[contact.id] = contact
        return contact

    def _find(self, phone: str, email: str | None) -> Contact | None:
        by_phone = next((c for c in self.contacts.values() if c.phone == phone), None)
        if by_phone is not None or email is None:
            return by_phone
        return next((c for c in self.contacts.values() if (c.email or "").lower() == email.lower()), None)

    async def free_slots(self, start: datetime, end: datetime, tz: str) -> list[Slot]:
        zone = ZoneInfo(tz)
        return [Slot(s.start.astimezone(zone), s.end.astimezone(zone)) for s in self._free(start, end)]

    def _free(self, start: datetime, end: datetime) -> list[Slot]:
        booked = [Slot(a.start, a.end) for a in self.appointments if a.status != "cancelled"]
        return [s for s in self.hours.slots(start, end) if not any(s.overlaps(b) for b in booked)]

    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        async with self._booking:
            self._require_contact(contact.id)
            if slot not in self._free(slot.start, slot.end):
                raise SlotTaken()
            appointment = Appointment(
                id=self._new_id("appointment"),
                calendar=self.calendar_id,
                contact=contact,
                start=slot.start,
                end=slot.end,
                title=title,
                status="confirmed",
            )
            self.appointments.append(appointment)
        if notes:
            self.notes.setdefault(contact.id, []).append(notes)
        return appointment

    async def cancel(self, appointment_id: str) -> None:
        """Kept on the list as ``cancelled``, so the slot is free again and the record stays."""
        for index, appointment in enumerate(self.appointments):
            if appointment.id == appointment_id:
                self.appointments[index] = replace(appointment, status="cancelled")
                return
        raise CalendarError(f"unknown appointment {appointment_id}", retryable=False)

    async def add_note(self, contact_id: str, body: str) -> None:
        self._require_contact(contact_id)
        self.notes.setdefault(contact_id, []).append(body)

    async def create_opportunity(
        self, contact_id: str, *, name: str, value: float | None = None, stage: str | None = None
    ) -> str:
        self._require_contact(contact_id)
        opportunity = Opportunity(
            id=self._new_id("opportunity"), contact_id=contact_id, name=name, value=value, stage=stage
        )
        self.opportunities.append(opportunity)
        return opportunity.id

    def _require_contact(self, contact_id: str) -> None:
        if contact_id not in self.contacts:
            raise CalendarError(f"unknown contact {contact_id}", retryable=False)
