"""Attachments through the mobile API: a teacher photographs a microscope's
nameplate, the photo travels after its record, the township clerk's laptop
fetches it, and a school over its quota loses nothing.

Run by tests/tests/mobile_python.rs with the other files here. These tests
start their own server (`tpsync serve --attachment-quota-mb 1
--max-attachment-mb 1`, so a quota of 1 MiB is reached with a few photos)
and set up its county over HTTP as the Rust harness does (tests/src/county.rs);
the shared server keeps its default limits and its sign-in budget. The
`tpsync` binary is taken from $TPSYNC_BIN, or from beside the bindings
folder (target/<profile>/python-bindings), where the harness builds both.
"""

import json
import os
import pathlib
import queue
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

import tpsync_mobile
from tpsync_mobile import tpsync as tp
from tpsync_mobile import tpsync_core as core

PASSWORD = os.environ.get("TPSYNC_PASSWORD", "青山-correct-horse-42")
COUNTY = "430123"
TOWNSHIP = "430123101"
SCHOOL = "4301230012"
TEACHER = "att-teacher"
CLERK = "att-township"
QUOTA = 1 << 20
MAX_FILE = 1 << 20

SCHOOLS_CSV = (
    "学校标识码,学校名称,学校类型,乡镇代码,乡镇名称,一年级,二年级,三年级\n"
    f"{SCHOOL},青山村教学点,教学点,{TOWNSHIP},青山镇,10,9,8\n"
)


def tpsync_binary():
    given = os.environ.get("TPSYNC_BIN")
    if given:
        return given
    profile = pathlib.Path(tpsync_mobile.__file__).resolve().parents[2]
    return str(profile / ("tpsync.exe" if os.name == "nt" else "tpsync"))


class SmallServer:
    """`tpsync serve` with a 1 MiB quota on 127.0.0.1:0, with one school,
    its teacher and its township clerk."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="tpsync-att-server-")
        # No TPSYNC_* variable of the harness (a 5 s token lifetime…)
        # reaches the server: its flags are all given here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TPSYNC_")}
        self.log = open(os.path.join(self.data, "server.log"), "wb")
        self.process = subprocess.Popen(
            [tpsync_binary(), "serve", "--data", os.path.join(self.data, "db"),
             "--listen", "127.0.0.1:0",
             "--attachment-quota-mb", str(QUOTA >> 20),
             "--max-attachment-mb", str(MAX_FILE >> 20),
             "--login-attempts-per-ip", "1000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=env,
        )
        lines = queue.Queue()

        def drain():
            for raw in self.process.stdout:
                lines.put(raw.decode("utf-8", "replace").strip())

        threading.Thread(target=drain, daemon=True).start()
        self.url = None
        code = None
        while self.url is None or code is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"tpsync serve did not start; log:\n{self.log_text()}")
            if line.startswith("tpsync listening on "):
                self.url = line.split()[-1]
            elif line.startswith("no administrator yet"):
                words = line.split()
                code = words[words.index("--code") + 1]
        self.setup(code)

    def call(self, method, path, body=None, token=None, content_type="application/json"):
        data = None
        headers = {}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        return json.loads(text) if text else None

    def setup(self, code):
        self.call("POST", "/v1/setup", {"code": code, "username": "admin", "password": PASSWORD})
        admin = self.call("POST", "/v1/auth/login", {
            "username": "admin", "password": PASSWORD, "device_id": "att-admin"})["access_token"]
        self.call("POST", "/v1/admin/county", {"code": COUNTY, "name": "青山县"}, admin)
        report = self.call("POST", "/v1/admin/schools/import?dry_run=false", SCHOOLS_CSV, admin,
                           content_type="text/csv; charset=utf-8")
        assert report["schools_created"] == 1, report
        for username, role, unit in ((TEACHER, "teacher", SCHOOL), (CLERK, "township", TOWNSHIP)):
            self.call("POST", "/v1/admin/users", {
                "username": username, "password": PASSWORD, "role": role, "unit": unit}, admin)

    def log_text(self):
        self.log.flush()
        with open(os.path.join(self.data, "server.log"), "rb") as f:
            return f.read()[-8000:].decode("utf-8", "replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


SERVER = None


def setUpModule():
    global SERVER
    SERVER = SmallServer()


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


def some_bytes(n, seed):
    """`n` bytes that do not compress (a JPEG's do not either)."""
    return bytes((i * seed + (i >> 8) * 31 + (i >> 16)) & 0xFF for i in range(n))


class Phone:
    """A device with its own store directory, signed in as `user`."""

    def __init__(self, device, user):
        self.dir = tempfile.mkdtemp(prefix="tpsync-att-phone-")
        self.device = device
        self.user = user
        self.session = None
        self.store = tp.SchoolStore.open(tp.StoreConfig(
            path=os.path.join(self.dir, "store"), school_code=SCHOOL, county_code=None,
            username=user, device_id=device,
        ))

    def credentials(self):
        if self.session is None:
            self.session = tp.sign_in(SERVER.url, self.user, PASSWORD, self.device, "test")
        return tp.Credentials.TOKENS(
            access_token=self.session.access_token,
            refresh_token=self.session.refresh_token,
        )

    def keep(self, session):
        if session is not None:
            self.session = session

    def sync(self):
        report = self.store.sync(SERVER.url, self.credentials(), None, None)
        self.keep(report.session)
        return report

    def file(self, name, n, seed):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(some_bytes(n, seed))
        return path

    def microscope(self, asset_no):
        return self.store.create(core.AnyRecord.EQUIPMENT_ITEM(record=core.EquipmentItem(
            asset_no=asset_no, name="学生显微镜", category_code=None, brand=None, model=None,
            spec=None, unit="台", quantity=1, unit_price_fen=38_000, funding_source=None,
            keeper=None, room="科学室", acquired_on=None, status=core.EquipmentStatus.IN_USE,
            status_reason=None, status_date=None)))

    def attach(self, item, path, preview=None, caption="铭牌"):
        return self.store.attach_file(
            core.RecordKind.EQUIPMENT_ITEM, item, path, "image/jpeg", caption, preview)


class Progress(tp.TransferObserver):
    def __init__(self):
        self.seen = []

    def on_progress(self, sha256, done_bytes, total_bytes):
        self.seen.append((sha256, done_bytes, total_bytes))


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Attachments(unittest.TestCase):
    def test_1_a_photo_travels_after_its_record_and_the_township_fetches_it(self):
        teacher = Phone("att-phone-a", TEACHER)
        item = teacher.microscope("PY-ATT-1")
        photo = teacher.file("IMG_2041.jpg", 300_000, 7)
        thumb = teacher.file("IMG_2041_thumb.jpg", 6_000, 13)
        info = teacher.attach(item, photo, thumb)
        self.assertEqual((info.target, info.target_kind, info.size, info.file_name, info.caption),
                         (item, core.AttachedTo.EQUIPMENT_ITEM, 300_000, "IMG_2041.jpg", "铭牌"))
        self.assertEqual((info.status, info.on_device, info.preview_on_device, info.uploaded),
                         (core.AttachmentStatus.ACTIVE, True, True, False))
        self.assertEqual(read(info.local_path), read(photo))
        # The phone holds its own copy: the camera's file may go.
        os.remove(photo)

        # Offline, the thumbnail waits first in line, then the photo.
        pending = teacher.store.pending_transfers()
        self.assertEqual(
            [(t.is_preview, t.size, t.done_bytes, t.direction, t.attachment_id) for t in pending],
            [(True, 6_000, 0, tp.TransferDirection.UPLOAD, info.id),
             (False, 300_000, 0, tp.TransferDirection.UPLOAD, info.id)])
        self.assertEqual([t.sha256 for t in pending], [info.preview_sha256, info.sha256])
        limits = teacher.store.attachment_limits()
        self.assertIsNone(limits.learned_at_ms)  # the server's defaults until a sync
        self.assertEqual((limits.max_attachment_bytes, limits.quota_bytes, limits.queued_bytes),
                         (20 << 20, 1 << 30, 306_000))

        # Bytes before their record: the server refuses each (not_referenced),
        # the reason stays on the item, nothing leaves the queue.
        early = teacher.store.transfer_attachments(SERVER.url, teacher.credentials(), None, None)
        teacher.keep(early.session)
        self.assertEqual((early.uploaded, early.remaining, len(early.errors)), (0, 2, 2))
        self.assertTrue(all("sync the records first" in t.last_error
                            for t in teacher.store.pending_transfers()), early.errors)

        # A sync: records first, then the bytes.
        report = teacher.sync()
        self.assertEqual((report.attachments_uploaded, report.attachments_pending,
                          report.attachment_error), (2, 0, None))
        self.assertEqual(teacher.store.pending_transfers(), [])
        [mine] = teacher.store.attachments_of(item)
        self.assertTrue(mine.uploaded and mine.on_device)
        limits = teacher.store.attachment_limits()
        self.assertIsNotNone(limits.learned_at_ms)
        self.assertEqual((limits.max_attachment_bytes, limits.quota_bytes, limits.queued_bytes),
                         (MAX_FILE, QUOTA, 0))
        self.assertGreaterEqual(limits.used_bytes, 306_000)

        # The township clerk's laptop: the record arrives by sync, the bytes
        # only when asked for.
        clerk = Phone("att-town-laptop", CLERK)
        clerk.sync()
        [seen] = clerk.store.attachments_of(item)
        self.assertEqual((seen.id, seen.sha256, seen.size, seen.preview_sha256, seen.caption),
                         (info.id, info.sha256, 300_000, info.preview_sha256, "铭牌"))
        self.assertEqual((seen.on_device, seen.preview_on_device, seen.local_path), (False, False, None))
        self.assertEqual(clerk.store.pending_transfers(), [])
        progress = Progress()
        fetched = clerk.store.fetch_attachment(SERVER.url, clerk.credentials(), seen.sha256, progress)
        clerk.keep(fetched.session)
        self.assertEqual(read(fetched.local_path), read(info.local_path))
        self.assertEqual(fetched.size, 300_000)
        self.assertTrue(progress.seen)
        self.assertEqual(progress.seen[-1], (seen.sha256, 300_000, 300_000))
        thumb_copy = clerk.store.fetch_attachment(SERVER.url, clerk.credentials(), seen.preview_sha256, None)
        self.assertEqual(read(thumb_copy.local_path), read(thumb))
        [seen] = clerk.store.attachments_of(item)
        self.assertEqual((seen.on_device, seen.preview_on_device, seen.uploaded, seen.local_path),
                         (True, True, True, fetched.local_path))
        # Once here, no network is needed.
        again = clerk.store.fetch_attachment("http://127.0.0.1:9", clerk.credentials(), seen.sha256, None)
        self.assertEqual(again.local_path, fetched.local_path)
        self.assertEqual(clerk.store.pending_transfers(), [])
        # A name no record of the school holds is not fetched.
        with self.assertRaises(tp.TpError.NotFound):
            clerk.store.fetch_attachment(SERVER.url, clerk.credentials(), "0" * 64, None)

        # A wrong photo removed before it was sent never leaves the phone,
        # and stays on it.
        wrong = teacher.attach(item, teacher.file("IMG_2042.jpg", 50_000, 3), caption="拍错了")
        self.assertEqual(len(teacher.store.pending_transfers()), 1)
        teacher.store.remove_attachment(wrong.id, "拍错了，不是这台显微镜")
        self.assertEqual(teacher.store.pending_transfers(), [])
        report = teacher.sync()
        self.assertEqual((report.attachments_uploaded, report.attachment_error), (0, None))
        statuses = {a.id: (a.status, a.status_reason, a.on_device, a.uploaded)
                    for a in teacher.store.attachments_of(item)}
        self.assertEqual(statuses, {
            info.id: (core.AttachmentStatus.ACTIVE, None, True, True),
            wrong.id: (core.AttachmentStatus.REMOVED, "拍错了，不是这台显微镜", True, False),
        })
        clerk.sync()
        removed = [a for a in clerk.store.attachments_of(item) if a.id == wrong.id]
        self.assertEqual([a.status for a in removed], [core.AttachmentStatus.REMOVED])

    def test_2_over_the_quota_the_phone_refuses_and_nothing_is_lost(self):
        teacher = Phone("att-phone-b", TEACHER)
        item = teacher.microscope("PY-ATT-2")
        first = teacher.attach(item, teacher.file("IMG_3001.jpg", 200_000, 5))
        report = teacher.sync()  # sends it, and learns the limits
        self.assertEqual((report.attachments_uploaded, report.attachment_error), (1, None))
        limits = teacher.store.attachment_limits()
        self.assertEqual((limits.quota_bytes, limits.queued_bytes), (QUOTA, 0))
        used = limits.used_bytes
        self.assertGreaterEqual(used, 200_000)
        self.assertEqual(limits.available_bytes, QUOTA - used)

        # Too large for the server: refused before anything is written.
        with self.assertRaises(tp.TpError.TooLarge) as e:
            teacher.attach(item, teacher.file("SCAN_0001.pdf", MAX_FILE + 1, 9))
        self.assertIn("1.0 MB", str(e.exception))
        # One byte over what the quota leaves: refused with the figures and
        # what to do.
        over_size = QUOTA - used + 1
        with self.assertRaises(tp.TpError.QuotaExceeded) as e:
            teacher.attach(item, teacher.file("IMG_3002.jpg", over_size, 11))
        message = str(e.exception)
        for figure in (SCHOOL, "1.0 MB", f"{over_size} bytes", "county"):
            self.assertIn(figure, message)
        # Nothing was lost, nothing half-written.
        [kept] = teacher.store.attachments_of(item)
        self.assertEqual((kept.id, kept.status, kept.on_device, kept.uploaded),
                         (first.id, core.AttachmentStatus.ACTIVE, True, True))
        self.assertEqual(read(kept.local_path), some_bytes(200_000, 5))
        self.assertEqual(teacher.store.pending_transfers(), [])
        # What fits still goes.
        fits = teacher.attach(item, teacher.file("IMG_3002_small.jpg", over_size - 1, 11))
        self.assertEqual(teacher.store.attachment_limits().available_bytes, 0)

        # A phone that never learned the limits queues a photo; the server
        # refuses its bytes, the records still sync, and the photo waits on
        # the phone with the server's reason.
        fresh = Phone("att-phone-c", TEACHER)
        other_item = fresh.microscope("PY-ATT-3")
        queued = fresh.attach(other_item, fresh.file("IMG_3003.jpg", 100_000, 17))
        report = teacher.sync()
        self.assertEqual((report.attachments_uploaded, report.attachment_error), (1, None))
        report = fresh.sync()
        self.assertEqual((report.attachments_uploaded, report.attachments_pending), (0, 1))
        self.assertIn("quota", report.attachment_error)
        self.assertEqual(fresh.store.sync_status().pending_changes, 0)
        [waiting] = fresh.store.pending_transfers()
        self.assertEqual((waiting.sha256, waiting.done_bytes), (queued.sha256, 0))
        self.assertIn("quota", waiting.last_error)
        [still] = fresh.store.attachments_of(other_item)
        self.assertEqual((still.status, still.on_device, still.uploaded),
                         (core.AttachmentStatus.ACTIVE, True, False))
        self.assertEqual(read(still.local_path), some_bytes(100_000, 17))
        # Now it knows: the next one is refused on the phone.
        with self.assertRaises(tp.TpError.QuotaExceeded):
            fresh.attach(other_item, fresh.file("IMG_3004.jpg", 10_000, 19))
        # The other phone sees the record; the bytes never reached the server.
        teacher.sync()
        [theirs] = teacher.store.attachments_of(other_item)
        self.assertEqual((theirs.on_device, theirs.uploaded), (False, False))
        with self.assertRaises(tp.TpError.NotFound):
            teacher.store.fetch_attachment(SERVER.url, teacher.credentials(), theirs.sha256, None)
        [mine] = [a for a in teacher.store.attachments_of(item) if a.id == fits.id]
        self.assertTrue(mine.uploaded)

if __name__ == "__main__":
    unittest.main()
