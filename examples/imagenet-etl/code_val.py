# The validation transform the seed post leaves as an exercise ("my-second-etl"):
# deterministic Resize(256) + CenterCrop(224), as in the PyTorch ImageNet example.
import io, sys
from PIL import Image
from torchvision import transforms

preprocessing = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
])

if __name__ == "__main__":
    image = Image.open(io.BytesIO(sys.stdin.buffer.read())).convert('RGB')
    buf = io.BytesIO()
    preprocessing(image).save(buf, format='JPEG')
    sys.stdout.buffer.write(buf.getvalue())
